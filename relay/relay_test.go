package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/relay"
)

func TestPublishThenQuery(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	alice := newKey(t)
	ev := alice.sign(t, 1, now(), "hello wisp", nostr.Tag{"t", "greeting"})
	res := c.publish(ev)
	if !res.ok || res.msg != "" {
		t.Fatalf("OK = %+v, want true with empty message", res)
	}

	got := c.query("s1", nostr.Filter{Authors: []string{alice.pk}})
	if len(got) != 1 || got[0].ID != ev.ID {
		t.Fatalf("got %v, want [%s]", ids(got), ev.ID)
	}
	if ok, _ := got[0].CheckSignature(); !ok {
		t.Fatal("served event does not verify")
	}
	// Every selective field finds it.
	for name, f := range map[string]nostr.Filter{
		"ids":   {IDs: []string{ev.ID}},
		"kinds": {Kinds: []int{1}},
		"tag":   {Tags: nostr.TagMap{"t": {"greeting"}}},
		"since": {Since: ptr(nostr.Timestamp(now() - 60))},
	} {
		if got := c.query("q-"+name, f); len(got) != 1 {
			t.Errorf("filter %s: got %d events, want 1", name, len(got))
		}
	}
	if got := c.query("miss", nostr.Filter{Tags: nostr.TagMap{"t": {"other"}}}); len(got) != 0 {
		t.Errorf("non-matching tag filter returned %d events", len(got))
	}
}

func ptr[T any](v T) *T { return &v }

func TestDuplicateIsOKWithPrefix(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	ev := newKey(t).sign(t, 1, now(), "once")
	c.mustPublish(ev)
	res := c.publish(ev)
	if !res.ok || !strings.HasPrefix(res.msg, "duplicate:") {
		t.Fatalf("second publish: %+v, want OK true duplicate:", res)
	}
	if got := c.query("s", nostr.Filter{IDs: []string{ev.ID}}); len(got) != 1 {
		t.Fatalf("stored %d copies", len(got))
	}
}

func TestInvalidEventsRefused(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	k := newKey(t)

	badID := k.sign(t, 1, now(), "x")
	badID.Content = "changed after signing"
	badSig := k.sign(t, 1, now(), "y")
	sig := []byte(badSig.Sig)
	sig[10] ^= 1
	if sig[10] > 'f' || (sig[10] > '9' && sig[10] < 'a') {
		sig[10] = '0'
	}
	badSig.Sig = string(sig)
	if string(sig) == k.sign(t, 1, int64(badSig.CreatedAt), "y").Sig {
		t.Fatal("tampering did not change the signature")
	}
	future := k.sign(t, 1, now()+3600, "from the future")
	expired := k.sign(t, 1, now(), "gone", nostr.Tag{"expiration", fmt.Sprint(now() - 10)})

	for name, ev := range map[string]*nostr.Event{"bad id": badID, "bad sig": badSig, "future": future, "expired": expired} {
		res := c.publish(ev)
		if res.ok || !strings.HasPrefix(res.msg, "invalid:") {
			t.Errorf("%s: got %+v, want OK false invalid:", name, res)
		}
	}
	if got := c.query("all", nostr.Filter{Authors: []string{k.pk}}); len(got) != 0 {
		t.Fatalf("refused events were stored: %v", ids(got))
	}
}

func TestOrderingLimitsAndMultipleFilters(t *testing.T) {
	tr := startRelay(t, func(c *relay.Config) { c.Limits.MaxLimit = 5; c.Limits.DefaultLimit = 3 })
	c := dial(t, tr.url)
	k := newKey(t)
	base := now() - 1000
	var all []*nostr.Event
	for i := range 8 {
		// Two events per second, so ties on created_at exist.
		ev := k.sign(t, 1, base+int64(i/2), fmt.Sprint("note ", i))
		c.mustPublish(ev)
		all = append(all, ev)
	}
	want := slices.Clone(all)
	slices.SortFunc(want, func(a, b *nostr.Event) int {
		if a.CreatedAt != b.CreatedAt {
			return int(b.CreatedAt - a.CreatedAt)
		}
		return strings.Compare(a.ID, b.ID)
	})
	wantIDs := make([]string, len(want))
	for i, e := range want {
		wantIDs[i] = e.ID
	}

	// The last event within the limit shares its second with the next one,
	// which comes too (NIP-67: a tie at the boundary is sent whole).
	got := c.query("capped", nostr.Filter{Authors: []string{k.pk}, Limit: 100})
	if !slices.Equal(ids(got), wantIDs[:6]) {
		t.Fatalf("limit capped at MaxLimit:\n got %v\nwant %v", ids(got), wantIDs[:6])
	}
	got = c.query("default", nostr.Filter{Authors: []string{k.pk}})
	if !slices.Equal(ids(got), wantIDs[:4]) {
		t.Fatalf("default limit:\n got %v\nwant %v", ids(got), wantIDs[:4])
	}
	// Two overlapping filters: union, no event twice, newest first.
	got = c.query("union",
		nostr.Filter{IDs: []string{all[0].ID, all[7].ID}},
		nostr.Filter{Authors: []string{k.pk}, Limit: 2})
	wantUnion := []string{}
	for _, id := range wantIDs {
		if id == all[0].ID || id == all[7].ID || id == wantIDs[0] || id == wantIDs[1] {
			wantUnion = append(wantUnion, id)
		}
	}
	if !slices.Equal(ids(got), wantUnion) {
		t.Fatalf("union:\n got %v\nwant %v", ids(got), wantUnion)
	}
	// limit 0 returns no stored events but still EOSE and live.
	if got := c.query("zero", nostr.Filter{Authors: []string{k.pk}, Limit: 0, LimitZero: true}); len(got) != 0 {
		t.Fatalf("limit 0 returned %d events", len(got))
	}
}

func TestLiveEventsAfterEOSE(t *testing.T) {
	tr := startRelay(t)
	sub := dial(t, tr.url)
	pub := dial(t, tr.url)
	k := newKey(t)
	if got := sub.req("live", nostr.Filter{Kinds: []int{1}, Authors: []string{k.pk}}); len(got) != 0 {
		t.Fatalf("history not empty: %v", ids(got))
	}
	ev := k.sign(t, 1, now(), "live one")
	pub.mustPublish(ev)
	got := sub.expectEvent("live")
	if got.ID != ev.ID {
		t.Fatalf("live event %s, want %s", got.ID, ev.ID)
	}
	// Not matching: another kind.
	pub.mustPublish(k.sign(t, 7, now(), "+"))
	sub.quiet(200 * time.Millisecond)

	// CLOSE ends it.
	sub.send("CLOSE", "live")
	sub.query("sync", nostr.Filter{IDs: []string{ev.ID}}) // the CLOSE is handled once this returns
	pub.mustPublish(k.sign(t, 1, now(), "after close"))
	sub.quiet(200 * time.Millisecond)
}

func TestReqReplacesSubscription(t *testing.T) {
	tr := startRelay(t)
	sub := dial(t, tr.url)
	pub := dial(t, tr.url)
	a, b := newKey(t), newKey(t)
	sub.req("x", nostr.Filter{Authors: []string{a.pk}})
	sub.req("x", nostr.Filter{Authors: []string{b.pk}})
	pub.mustPublish(a.sign(t, 1, now(), "from a"))
	evB := b.sign(t, 1, now(), "from b")
	pub.mustPublish(evB)
	if got := sub.expectEvent("x"); got.ID != evB.ID {
		t.Fatalf("replaced sub delivered %s (%q), want b's event", got.ID, got.Content)
	}
	sub.quiet(200 * time.Millisecond)
}

func TestTooManySubscriptions(t *testing.T) {
	tr := startRelay(t, func(c *relay.Config) { c.Limits.MaxSubscriptions = 2 })
	c := dial(t, tr.url)
	c.req("a", nostr.Filter{Kinds: []int{1}})
	c.req("b", nostr.Filter{Kinds: []int{1}})
	c.send("REQ", "c", nostr.Filter{Kinds: []int{1}})
	m := c.expectMsg("CLOSED")
	if str(t, m[1]) != "c" || !strings.HasPrefix(str(t, m[2]), "blocked:") {
		t.Fatalf("got %s", join(m))
	}
	// Closing one makes room.
	c.send("CLOSE", "a")
	c.req("c", nostr.Filter{Kinds: []int{1}})
}

func TestReplaceableAndAddressable(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	k := newKey(t)
	t0 := now() - 100

	old := k.sign(t, 0, t0, `{"name":"old"}`)
	newer := k.sign(t, 0, t0+10, `{"name":"new"}`)
	c.mustPublish(old)
	c.mustPublish(newer)
	got := c.query("p", nostr.Filter{Authors: []string{k.pk}, Kinds: []int{0}})
	if len(got) != 1 || got[0].ID != newer.ID {
		t.Fatalf("profile: got %v, want only the newer", ids(got))
	}
	// An older version arriving later is refused and not served.
	older := k.sign(t, 0, t0-10, `{"name":"older"}`)
	if res := c.publish(older); res.ok {
		t.Fatalf("older replaceable accepted: %+v", res)
	}
	if got := c.query("p2", nostr.Filter{Authors: []string{k.pk}, Kinds: []int{0}}); len(got) != 1 || got[0].ID != newer.ID {
		t.Fatalf("after older: got %v", ids(got))
	}

	// Addressable: keyed by d tag.
	a1 := k.sign(t, 30023, t0, "v1", nostr.Tag{"d", "post"})
	a2 := k.sign(t, 30023, t0+5, "v2", nostr.Tag{"d", "post"})
	other := k.sign(t, 30023, t0, "other", nostr.Tag{"d", "other"})
	c.mustPublish(a1)
	c.mustPublish(other)
	c.mustPublish(a2)
	got = c.query("a", nostr.Filter{Authors: []string{k.pk}, Kinds: []int{30023}})
	gotIDs := ids(got)
	slices.Sort(gotIDs)
	want := []string{a2.ID, other.ID}
	slices.Sort(want)
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("addressable: got %v, want %v", gotIDs, want)
	}
}

func TestEphemeralIsLiveOnly(t *testing.T) {
	tr := startRelay(t)
	sub := dial(t, tr.url)
	pub := dial(t, tr.url)
	k := newKey(t)
	sub.req("eph", nostr.Filter{Kinds: []int{20001}})
	ev := k.sign(t, 20001, now(), "blink")
	pub.mustPublish(ev)
	if got := sub.expectEvent("eph"); got.ID != ev.ID {
		t.Fatalf("got %s", got.ID)
	}
	if got := pub.query("later", nostr.Filter{Kinds: []int{20001}}); len(got) != 0 {
		t.Fatalf("ephemeral event was stored: %v", ids(got))
	}
}

func TestDeletion(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	alice, mallory := newKey(t), newKey(t)
	t0 := now() - 100
	note := alice.sign(t, 1, t0, "regret")
	keep := alice.sign(t, 1, t0, "keep")
	art1 := alice.sign(t, 30023, t0, "draft", nostr.Tag{"d", "art"})
	for _, ev := range []*nostr.Event{note, keep, art1} {
		c.mustPublish(ev)
	}
	addr := fmt.Sprintf("30023:%s:art", alice.pk)

	// Someone else's deletion removes nothing.
	c.mustPublish(mallory.sign(t, 5, t0+1, "", nostr.Tag{"e", note.ID}, nostr.Tag{"a", addr}))
	if got := c.query("m", nostr.Filter{Authors: []string{alice.pk}}); len(got) != 3 {
		t.Fatalf("mallory's deletion removed events: %d left", len(got))
	}

	del := alice.sign(t, 5, t0+2, "oops", nostr.Tag{"e", note.ID}, nostr.Tag{"a", addr})
	c.mustPublish(del)
	got := c.query("after", nostr.Filter{Authors: []string{alice.pk}})
	gotIDs := ids(got)
	if slices.Contains(gotIDs, note.ID) || slices.Contains(gotIDs, art1.ID) {
		t.Fatalf("deleted events still served: %v", gotIDs)
	}
	if !slices.Contains(gotIDs, keep.ID) || !slices.Contains(gotIDs, del.ID) {
		t.Fatalf("kept event or the deletion itself missing: %v", gotIDs)
	}
	// Sending a deleted event again does not bring it back.
	if res := c.publish(note); res.ok {
		t.Fatalf("deleted event accepted again: %+v", res)
	}
	// A newer version of the address than the deletion stays.
	art2 := alice.sign(t, 30023, t0+3, "rewritten", nostr.Tag{"d", "art"})
	c.mustPublish(art2)
	if got := c.query("art", nostr.Filter{Kinds: []int{30023}, Authors: []string{alice.pk}}); len(got) != 1 || got[0].ID != art2.ID {
		t.Fatalf("newer address version: got %v", ids(got))
	}
	if got := c.query("n", nostr.Filter{IDs: []string{note.ID}}); len(got) != 0 {
		t.Fatal("re-sent deleted event is served")
	}
}

func TestExpiration(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	k := newKey(t)
	soon := k.sign(t, 1, now(), "short-lived", nostr.Tag{"expiration", fmt.Sprint(now() + 2)})
	c.mustPublish(soon)
	if got := c.query("a", nostr.Filter{IDs: []string{soon.ID}}); len(got) != 1 {
		t.Fatal("not served before expiry")
	}
	eventually(t, "expiry", func() bool { return time.Now().Unix() > int64(soon.CreatedAt)+2 })
	if got := c.query("b", nostr.Filter{IDs: []string{soon.ID}}); len(got) != 0 {
		t.Fatal("expired event is still served")
	}
}

func TestNIP11AndFrontPage(t *testing.T) {
	tr := startRelay(t, func(c *relay.Config) { c.Info.Name = "Test <Relay>"; c.Info.Description = "a relay for tests" })

	req, _ := http.NewRequest("GET", tr.srv.URL+"/", nil)
	req.Header.Set("Accept", "application/nostr+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "application/nostr+json") {
		t.Errorf("content type %q", ct)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("no CORS header")
	}
	var doc struct {
		Name          string `json:"name"`
		Description   string `json:"description"`
		SupportedNIPs []int  `json:"supported_nips"`
		Software      string `json:"software"`
		Version       string `json:"version"`
		Limitation    struct {
			MaxMessageLength int `json:"max_message_length"`
			MaxSubscriptions int `json:"max_subscriptions"`
			MaxLimit         int `json:"max_limit"`
		} `json:"limitation"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("NIP-11 document %s: %v", body, err)
	}
	lim := relay.DefaultLimits()
	if doc.Name != "Test <Relay>" || doc.Description != "a relay for tests" || !slices.Equal(doc.SupportedNIPs, []int{1, 9, 11, 17, 40, 42, 45, 59, 62, 67, 70}) ||
		doc.Limitation.MaxMessageLength != lim.MaxMessageBytes || doc.Limitation.MaxSubscriptions != lim.MaxSubscriptions ||
		doc.Limitation.MaxLimit != lim.MaxLimit || doc.Software == "" || !strings.HasPrefix(doc.Version, "test") {
		t.Errorf("document: %s", body)
	}

	resp, err = http.Get(tr.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("front page content type %q", resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{tr.url, "Test &lt;Relay&gt;", "a relay for tests"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("front page lacks %q", want)
		}
	}
}

func TestBadInputKeepsConnectionUsable(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	k := newKey(t)
	good := k.sign(t, 1, now(), "good")
	goodJSON, _ := json.Marshal(good)
	withField := func(field, value string) string {
		var m map[string]json.RawMessage
		json.Unmarshal(goodJSON, &m)
		m[field] = json.RawMessage(value)
		b, _ := json.Marshal(m)
		return `["EVENT",` + string(b) + `]`
	}
	cases := []struct {
		name, frame, verb, prefix string
	}{
		{"not json", `hello`, "NOTICE", "invalid:"},
		{"truncated", `["REQ","a",{`, "CLOSED", "invalid:"},
		{"not an array", `{"EVENT":1}`, "NOTICE", "invalid:"},
		{"empty array", `[]`, "NOTICE", "invalid:"},
		{"verb not a string", `[1,2]`, "NOTICE", "invalid:"},
		{"unknown verb", `["HELLO","x"]`, "NOTICE", "invalid:"},
		{"event not an object", `["EVENT","x"]`, "NOTICE", "invalid:"},
		{"bad kind type", withField("kind", `"1"`), "OK", "invalid:"},
		{"negative created_at", withField("created_at", `-5`), "OK", "invalid:"},
		{"huge created_at", withField("created_at", `1e400`), "OK", "invalid:"},
		{"uppercase pubkey", withField("pubkey", `"`+strings.ToUpper(good.PubKey)+`"`), "OK", "invalid:"},
		{"tag not strings", withField("tags", `[["e",1]]`), "OK", "invalid:"},
		{"deep nesting", withField("tags", strings.Repeat("[", 500)+strings.Repeat("]", 500)), "OK", "invalid:"},
		{"req without filter", `["REQ","a"]`, "CLOSED", "invalid:"},
		{"req filter not object", `["REQ","a",5]`, "CLOSED", "invalid:"},
		{"req bad author hex", `["REQ","a",{"authors":["zz"]}]`, "CLOSED", "invalid:"},
		{"req negative limit", `["REQ","a",{"limit":-1}]`, "CLOSED", "invalid:"},
		{"req empty sub id", `["REQ","",{}]`, "CLOSED", "invalid:"},
		{"req long sub id", `["REQ","` + strings.Repeat("s", 65) + `",{}]`, "CLOSED", "invalid:"},
		{"close without id", `["CLOSE"]`, "NOTICE", "invalid:"},
		// Text that is not UTF-8 fails the websocket with 1007 (RFC 6455
		// section 8.1), see TestTextNotUTF8ClosesWith1007.
	}
	for _, tc := range cases {
		c.sendRaw(tc.frame)
		m := c.next()
		verb := str(t, m[0])
		if verb != tc.verb {
			t.Errorf("%s: got %s, want %s", tc.name, join(m), tc.verb)
			continue
		}
		msg := str(t, m[len(m)-1])
		if !strings.HasPrefix(msg, tc.prefix) {
			t.Errorf("%s: reason %q, want prefix %q", tc.name, msg, tc.prefix)
		}
		if verb == "OK" && string(m[2]) != "false" {
			t.Errorf("%s: OK %s", tc.name, m[2])
		}
	}
	// Still usable.
	c.mustPublish(good)
	if got := c.query("still", nostr.Filter{IDs: []string{good.ID}}); len(got) != 1 {
		t.Fatal("connection unusable after bad input")
	}
}

func TestOversizedFrameClosesOnlyThatConnection(t *testing.T) {
	tr := startRelay(t, func(c *relay.Config) { c.Limits.MaxMessageBytes = 4096 })
	big := dial(t, tr.url)
	other := dial(t, tr.url)
	big.sendRaw(`["REQ","a",{"authors":["` + strings.Repeat("a", 10000) + `"]}]`)
	select {
	case <-big.done:
	case <-time.After(10 * time.Second):
		t.Fatal("oversized frame did not close the connection")
	}
	if code := websocket.CloseStatus(big.closeErr); code != websocket.StatusMessageTooBig {
		t.Errorf("close status %v (%v), want 1009", code, big.closeErr)
	}
	other.mustPublish(newKey(t).sign(t, 1, now(), "still here"))
}

func TestSlowConsumerIsEvicted(t *testing.T) {
	tr := startRelay(t, func(c *relay.Config) { c.Limits.MaxPendingBytes = 256 << 10 })
	// A client that subscribes and then never reads.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	slow, _, err := websocket.Dial(ctx, tr.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	if err := slow.Write(ctx, websocket.MessageText, []byte(`["REQ","all",{"kinds":[1]}]`)); err != nil {
		t.Fatal(err)
	}
	fast := dial(t, tr.url)
	fast.req("all", nostr.Filter{Kinds: []int{1}})
	eventually(t, "both subscriptions open", func() bool { return tr.relay.Stats().Subscriptions == 2 })

	pub := dial(t, tr.url)
	k := newKey(t)
	content := strings.Repeat("x", 60000)
	for i := 0; tr.relay.Stats().SlowEvictions == 0; i++ {
		if i == 2000 {
			t.Fatal("slow client never evicted")
		}
		ev := k.sign(t, 1, now(), fmt.Sprint(i, content))
		pub.mustPublish(ev)
		if got := fast.expectEvent("all"); got.ID != ev.ID {
			t.Fatalf("fast subscriber got %s, want %s", got.ID, ev.ID)
		}
	}
	// Others go on.
	ev := k.sign(t, 1, now(), "after eviction")
	pub.mustPublish(ev)
	if got := fast.expectEvent("all"); got.ID != ev.ID {
		t.Fatal("fast subscriber stalled")
	}
}

// TestNoGapBetweenHistoryAndLive subscribes while events are being
// published: every event must arrive exactly once, either before EOSE or
// after it.
func TestNoGapBetweenHistoryAndLive(t *testing.T) {
	tr := startRelay(t)
	k := newKey(t)
	const total = 300
	evs := make([]*nostr.Event, total)
	for i := range evs {
		evs[i] = k.sign(t, 1, now()-int64(total-i), fmt.Sprint("n", i))
	}
	pub := dial(t, tr.url)
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, ev := range evs {
			pub.mustPublish(ev)
		}
	})

	subs := make([]*client, 5)
	seen := make([]map[string]int, len(subs))
	for i := range subs {
		time.Sleep(time.Duration(i) * 15 * time.Millisecond)
		subs[i] = dial(t, tr.url)
		seen[i] = map[string]int{}
		for _, ev := range subs[i].req("g", nostr.Filter{Authors: []string{k.pk}, Limit: 5000}) {
			seen[i][ev.ID]++
		}
	}
	wg.Wait()
	for i, c := range subs {
		for len(seen[i]) < total {
			ev := c.expectEvent("g")
			seen[i][ev.ID]++
		}
		for id, n := range seen[i] {
			if n != 1 {
				t.Errorf("sub %d got %s %d times", i, id, n)
			}
		}
		c.quiet(50 * time.Millisecond)
	}
}

func TestShutdownDrainsAcceptedEvents(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	k := newKey(t)
	var evs []*nostr.Event
	for i := range 200 {
		evs = append(evs, k.sign(t, 1, now(), fmt.Sprint("burst ", i)))
	}
	for _, ev := range evs {
		c.send("EVENT", ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go tr.relay.Shutdown(ctx)

	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed by shutdown")
	}
	var okd []string
	for len(c.in) > 0 {
		m := <-c.in
		if str(t, m[0]) == "OK" && string(m[2]) == "true" {
			okd = append(okd, str(t, m[1]))
		}
	}
	if code := websocket.CloseStatus(c.closeErr); code != websocket.StatusGoingAway {
		t.Errorf("close status %v, want going away", code)
	}
	for _, id := range okd {
		if has, err := tr.store.Has(context.Background(), id); err != nil || !has {
			t.Fatalf("event %s got OK true but is not stored (%v)", id, err)
		}
	}
	t.Logf("%d of %d events acknowledged before shutdown", len(okd), len(evs))
}

func TestSilentClientIsDroppedByPing(t *testing.T) {
	tr := startRelay(t, func(c *relay.Config) { c.PingInterval = 100 * time.Millisecond })
	// This client never reads, so it never answers a ping.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	silent, _, err := websocket.Dial(ctx, tr.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseNow()
	// A client that reads answers pings and stays.
	alive := dial(t, tr.url)
	eventually(t, "two connections", func() bool { return tr.relay.Stats().Connections == 2 })
	eventually(t, "the silent client dropped", func() bool { return tr.relay.Stats().Connections == 1 })
	time.Sleep(300 * time.Millisecond)
	if n := tr.relay.Stats().Connections; n != 1 {
		t.Fatalf("%d connections, want the reading client to stay", n)
	}
	alive.mustPublish(newKey(t).sign(t, 1, now(), "still connected"))
}

// A client that pings without reading the pongs is evicted like any slow
// consumer instead of making the relay pile them up.
func TestPingFloodWithoutReadingIsEvicted(t *testing.T) {
	tr := startRelay(t, func(c *relay.Config) { c.Limits.MaxPendingBytes = 64 << 10 })
	nc, err := net.Dial("tcp", strings.TrimPrefix(tr.url, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	// A masked ping with 125 bytes of payload, sent over and over; the
	// answer to the handshake and every pong stay unread.
	ping := append([]byte{0x89, 0x80 | 125, 1, 2, 3, 4}, make([]byte, 125)...)
	burst := bytes.Repeat(ping, 512)
	nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
	for i := 0; tr.relay.Stats().SlowEvictions == 0; i++ {
		if _, err := nc.Write(burst); err != nil {
			break // the relay closed the connection: evicted
		}
		if i == 2000 {
			t.Fatal("a client flooding pings was never evicted")
		}
	}
	eventually(t, "the eviction counted", func() bool { return tr.relay.Stats().SlowEvictions == 1 })
	// Others are served.
	c := dial(t, tr.url)
	c.mustPublish(newKey(t).sign(t, 1, now(), "still serving"))
}
