package relay_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

func contentsOf(evs []nostr.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Content
	}
	return out
}

// NIP-50 over the websocket: search finds by words, ranked, respects the
// other fields and the indexed kinds, ignores extensions, and never serves
// an event lacking a word of the search, stored or live.
func TestSearchOverWebsocket(t *testing.T) {
	tr := startRelayOpts(t, sqlite.Options{SearchKinds: []int{1, 30023}})
	c := dial(t, tr.url)
	alice, bob := newKey(t), newKey(t)
	base := now() - 100
	for _, ev := range []*nostr.Event{
		alice.sign(t, 1, base, "Zaps are lightning payments on nostr"),
		alice.sign(t, 1, base+1, "zap zap zap, I love zaps and zap"),
		bob.sign(t, 1, base+2, "Lightning network explained", nostr.Tag{"t", "ln"}),
		bob.sign(t, 30023, base+3, "A long read about Lightning zaps", nostr.Tag{"d", "zaps"}),
		alice.sign(t, 7, base+4, "zap"), // kind 7 is not indexed
		bob.sign(t, 0, base+5, `{"about":"zap enthusiast"}`),
		bob.sign(t, 1, base+6, "zapping is not zap? it is: zap!"),
	} {
		c.mustPublish(ev)
	}
	search := func(sub string, f nostr.Filter) []string {
		return contentsOf(c.query(sub, f))
	}
	cases := []struct {
		f    nostr.Filter
		want []string
	}{
		{nostr.Filter{Search: "zap"}, []string{
			"zap zap zap, I love zaps and zap",
			"zapping is not zap? it is: zap!",
		}},
		// Equally relevant (one hit in six words): newest first.
		{nostr.Filter{Search: "ZAPS"}, []string{
			"A long read about Lightning zaps",
			"Zaps are lightning payments on nostr",
			"zap zap zap, I love zaps and zap",
		}},
		{nostr.Filter{Search: "lightning zaps"}, []string{
			"A long read about Lightning zaps",
			"Zaps are lightning payments on nostr",
		}},
		{nostr.Filter{Search: "lightning", Kinds: []int{30023}}, []string{"A long read about Lightning zaps"}},
		{nostr.Filter{Search: "lightning", Authors: []string{bob.pk}, Kinds: []int{1}}, []string{"Lightning network explained"}},
		{nostr.Filter{Search: "lightning", Tags: nostr.TagMap{"t": {"ln"}}}, []string{"Lightning network explained"}},
		{nostr.Filter{Search: "lightning", Since: tsp(base + 1), Until: tsp(base + 2)}, []string{"Lightning network explained"}},
		{nostr.Filter{Search: "lightning include:spam language:en"}, []string{
			"Lightning network explained",
			"A long read about Lightning zaps",
			"Zaps are lightning payments on nostr",
		}},
		{nostr.Filter{Search: "include:spam"}, nil},
		{nostr.Filter{Search: "zap", Kinds: []int{7, 0}}, nil},
		{nostr.Filter{Search: "bitcoin"}, nil},
		{nostr.Filter{Search: "zap", Limit: 1}, []string{"zap zap zap, I love zaps and zap"}},
	}
	for i, tc := range cases {
		t.Run(tc.f.Search, func(t *testing.T) {
			got := search(fmt.Sprint("s", i), tc.f)
			if !slices.Equal(got, tc.want) {
				t.Errorf("search %v:\n got %q\nwant %q", tc.f, got, tc.want)
			}
			match := tr.store.SearchMatcher(tc.f.Search)
			for _, content := range got {
				if !match(&nostr.Event{Kind: 1, Content: content}) {
					t.Errorf("search %q served %q", tc.f.Search, content)
				}
			}
			// COUNT agrees.
			if n, closed := c.count(fmt.Sprint("n", i), tc.f); closed != "" || (tc.f.Limit == 0 && n.Count != int64(len(got))) {
				t.Errorf("COUNT %v: %+v %q, REQ %d", tc.f, n, closed, len(got))
			}
		})
	}

	// Live: only new events holding every word reach a search subscription.
	if evs := c.req("live", nostr.Filter{Search: "nostr relay", Kinds: []int{1}}); len(evs) != 0 {
		t.Fatalf("stored matches: %q", contentsOf(evs))
	}
	other := dial(t, tr.url)
	for _, ev := range []*nostr.Event{
		alice.sign(t, 1, now(), "a nostr relay in Go"),
		alice.sign(t, 1, now(), "nostr relays"),                         // "relays" is not "relay"
		alice.sign(t, 30023, now(), "nostr relay", nostr.Tag{"d", "x"}), // kind filtered out
		alice.sign(t, 7, now(), "nostr relay"),                          // not an indexed kind
		alice.sign(t, 1, now(), "Relay: the NOSTR way"),
	} {
		other.mustPublish(ev)
	}
	got := []string{c.expectEvent("live").Content, c.expectEvent("live").Content}
	slices.Sort(got)
	if !slices.Equal(got, []string{"Relay: the NOSTR way", "a nostr relay in Go"}) {
		t.Errorf("live search delivered %q", got)
	}
	c.quiet(200 * time.Millisecond)
}

// With search off (no indexed kinds), a REQ with search is refused.
func TestSearchOff(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	c.send("REQ", "s", nostr.Filter{Search: "x"})
	m := c.expectMsg("CLOSED")
	if why := str(t, m[2]); !strings.HasPrefix(why, "blocked:") || !strings.Contains(why, "NIP-50") {
		t.Errorf("CLOSED %q", why)
	}
}
