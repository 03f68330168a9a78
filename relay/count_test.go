package relay_test

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip45"
	"github.com/nbd-wtf/go-nostr/nip45/hyperloglog"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// countCorpus publishes a varied set of signed events over the websocket.
func countCorpus(t *testing.T, c *client) (root, reply *nostr.Event, alice, bob, carol key) {
	alice, bob, carol = newKey(t), newKey(t), newKey(t)
	base := now() - 1000
	root = alice.sign(t, 1, base, "root note", nostr.Tag{"t", "nostr"})
	c.mustPublish(root)
	reply = bob.sign(t, 1, base+1, "a reply", nostr.Tag{"e", root.ID}, nostr.Tag{"p", alice.pk}, nostr.Tag{"t", "nostr"}, nostr.Tag{"t", "go"})
	c.mustPublish(reply)
	for i, k := range []key{alice, bob, carol} {
		c.mustPublish(k.sign(t, 7, base+2+int64(i), "+", nostr.Tag{"e", root.ID}, nostr.Tag{"p", alice.pk}))
	}
	c.mustPublish(carol.sign(t, 7, base+10, "-", nostr.Tag{"e", reply.ID}, nostr.Tag{"p", bob.pk}))
	c.mustPublish(bob.sign(t, 6, base+11, "", nostr.Tag{"e", root.ID}, nostr.Tag{"p", alice.pk}))
	c.mustPublish(carol.sign(t, 3, base+12, "", nostr.Tag{"p", alice.pk}, nostr.Tag{"p", bob.pk}))
	c.mustPublish(bob.sign(t, 3, base+13, "", nostr.Tag{"p", alice.pk}))
	c.mustPublish(alice.sign(t, 3, base+14, "", nostr.Tag{"p", carol.pk}))
	c.mustPublish(alice.sign(t, 30023, base+15, "an article", nostr.Tag{"d", "post"}, nostr.Tag{"t", "nostr"}))
	c.mustPublish(alice.sign(t, 1111, base+16, "a comment", nostr.Tag{"E", root.ID}, nostr.Tag{"e", root.ID}))
	c.mustPublish(bob.sign(t, 1, base+17, "quoting", nostr.Tag{"q", root.ID}))
	for i := range 5 {
		c.mustPublish([]key{alice, bob, carol}[i%3].sign(t, 1, base+20, fmt.Sprint("tie ", i), nostr.Tag{"t", "tie"}))
	}
	// A private message: never counted, as an unauthenticated REQ never
	// serves it.
	c.mustPublish(bob.sign(t, 4, base+30, "secret", nostr.Tag{"p", carol.pk}))
	return root, reply, alice, bob, carol
}

// COUNT answers, for every filter set of a table, the number of events a
// REQ with the same filters returns.
func TestCountMatchesReq(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	root, reply, alice, bob, carol := countCorpus(t, c)
	base := now() - 1000
	cases := [][]nostr.Filter{
		{{}},
		{{Kinds: []int{1}}},
		{{Kinds: []int{7, 6}}},
		{{Authors: []string{alice.pk}}},
		{{Authors: []string{alice.pk, bob.pk}, Kinds: []int{1, 3}}},
		{{IDs: []string{root.ID, reply.ID}}},
		{{Kinds: []int{7}, Tags: nostr.TagMap{"e": {root.ID}}}},  // reactions
		{{Kinds: []int{6}, Tags: nostr.TagMap{"e": {root.ID}}}},  // reposts
		{{Kinds: []int{1}, Tags: nostr.TagMap{"e": {root.ID}}}},  // replies
		{{Kinds: []int{3}, Tags: nostr.TagMap{"p": {alice.pk}}}}, // followers
		{{Kinds: []int{1, 1111}, Tags: nostr.TagMap{"q": {root.ID}}}},
		{{Kinds: []int{1111}, Tags: nostr.TagMap{"E": {root.ID}}}},
		{{Tags: nostr.TagMap{"p": {alice.pk}}}},
		{{Tags: nostr.TagMap{"p": {bob.pk, carol.pk}}}},
		{{Tags: nostr.TagMap{"t": {"nostr"}, "p": {alice.pk}}}},
		{{Tags: nostr.TagMap{"e": {root.ID, reply.ID}}, Authors: []string{carol.pk}}},
		{{Tags: nostr.TagMap{"d": {"post"}}, Authors: []string{alice.pk}, Kinds: []int{30023}}},
		{{Since: tsp(base + 10)}},
		{{Until: tsp(base + 10), Kinds: []int{7}}},
		{{Since: tsp(base + 2), Until: tsp(base + 13), Tags: nostr.TagMap{"p": {alice.pk}}}},
		{{Kinds: []int{12345}}},
		{{Tags: nostr.TagMap{"t": {"tie"}}}, {Authors: []string{carol.pk}}, {Kinds: []int{3}}},
		{{Kinds: []int{7}}, {Tags: nostr.TagMap{"e": {root.ID}}}},
	}
	for i, fs := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			want := len(c.query(fmt.Sprint("q", i), fs...))
			got, closed := c.count(fmt.Sprint("c", i), fs...)
			if closed != "" || got.Count != int64(want) || got.Approximate {
				t.Errorf("COUNT %v = %+v (closed %q); REQ returned %d", fs, got, closed, want)
			}
		})
	}
	// Limits are ignored: COUNT counts everything.
	all := len(c.query("all", nostr.Filter{}))
	if got, _ := c.count("lim", nostr.Filter{Limit: 2}); got.Count != int64(all) {
		t.Errorf("COUNT with limit 2: %d, want %d", got.Count, all)
	}
}

// The HyperLogLog of NIP-45's common filters matches registers computed
// from the counted events, with the offset the NIP (and go-nostr) derives.
func TestCountHLL(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	root, _, alice, _, _ := countCorpus(t, c)
	for range 40 {
		c.mustPublish(newKey(t).sign(t, 7, now()-500, "+", nostr.Tag{"e", root.ID}))
	}
	for i, f := range []nostr.Filter{
		{Kinds: []int{7}, Tags: nostr.TagMap{"e": {root.ID}}},
		{Kinds: []int{3}, Tags: nostr.TagMap{"p": {alice.pk}}},
		{Kinds: []int{1111}, Tags: nostr.TagMap{"E": {root.ID}}},
	} {
		evs := c.query(fmt.Sprint("h", i), f)
		got, closed := c.count(fmt.Sprint("hc", i), f)
		if closed != "" || got.Count != int64(len(evs)) {
			t.Fatalf("COUNT %v: %+v %q, REQ %d", f, got, closed, len(evs))
		}
		offset := nip45.HyperLogLogEventPubkeyOffsetForFilter(f)
		if offset < 0 {
			t.Fatalf("go-nostr finds no offset for %v", f)
		}
		want := hyperloglog.New(offset)
		for _, ev := range evs {
			want.Add(ev.PubKey)
		}
		if got.HLL != hex.EncodeToString(want.GetRegisters()) {
			t.Errorf("hll of %v:\n got %s\nwant %x", f, got.HLL, want.GetRegisters())
		}
		if est := want.Count(); i == 0 && (est < 30 || est > 60) {
			t.Errorf("estimate %d for %d reactions", est, len(evs))
		}
	}
	// No HLL where NIP-45 does not define it.
	for i, fs := range [][]nostr.Filter{
		{{Kinds: []int{1}}},
		{{Tags: nostr.TagMap{"e": {root.ID}}}},
		{{Kinds: []int{7}, Tags: nostr.TagMap{"e": {root.ID}}}, {Kinds: []int{6}}},
		{{Kinds: []int{7}, Tags: nostr.TagMap{"e": {root.ID}, "p": {alice.pk}}}},
	} {
		if got, _ := c.count(fmt.Sprint("n", i), fs...); got.HLL != "" {
			t.Errorf("COUNT %v has an hll", fs)
		}
	}
}

// Past the store's cap the count is a lower bound marked approximate.
func TestCountApproximate(t *testing.T) {
	tr := startRelayOpts(t, sqlite.Options{CountCap: 5})
	c := dial(t, tr.url)
	k := newKey(t)
	for i := range 8 {
		c.mustPublish(k.sign(t, 1, now()-int64(i), fmt.Sprint(i)))
	}
	got, closed := c.count("a", nostr.Filter{Kinds: []int{1}})
	if closed != "" || got.Count != 5 || !got.Approximate {
		t.Errorf("COUNT past the cap: %+v %q", got, closed)
	}
	if got, _ := c.count("b", nostr.Filter{Kinds: []int{1}, Limit: 1, Since: tsp(now() - 2)}); got.Count != 3 || got.Approximate {
		t.Errorf("COUNT under the cap: %+v", got)
	}
}

// Refused COUNTs get CLOSED with a prefix, and the connection goes on.
func TestCountRefused(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	k := newKey(t)
	for _, tc := range []struct {
		frame  string
		prefix string
	}{
		{`["COUNT","dm",{"kinds":[4],"#p":["` + k.pk + `"]}]`, "restricted:"},
		{`["COUNT","gw",{"kinds":[1,1059]}]`, "restricted:"},
		{`["COUNT","s",{"search":"nostr"}]`, "blocked:"}, // search is off here
		{`["COUNT","bad",{"kinds":"x"}]`, "invalid:"},
		{`["COUNT","none"]`, "invalid:"},
	} {
		c.sendRaw(tc.frame)
		m := c.expectMsg("CLOSED")
		if why := str(t, m[2]); !strings.HasPrefix(why, tc.prefix) {
			t.Errorf("%s: CLOSED %q, want prefix %q", tc.frame, why, tc.prefix)
		}
	}
	if got, closed := c.count("ok", nostr.Filter{}); closed != "" || got.Count != 0 {
		t.Errorf("COUNT after refusals: %+v %q", got, closed)
	}
}

// NIP-11 lists 45; 50 only when search is on.
func TestCountAndSearchAdvertised(t *testing.T) {
	for _, on := range []bool{false, true} {
		opts := sqlite.Options{}
		if on {
			opts.SearchKinds = []int{1}
		}
		tr := startRelayOpts(t, opts, func(*relay.Config) {})
		nips := nip11NIPs(t, tr)
		if !slices.Contains(nips, 45) || slices.Contains(nips, 50) != on {
			t.Errorf("search %v: supported_nips %v", on, nips)
		}
	}
}
