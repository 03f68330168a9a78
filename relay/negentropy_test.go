package relay_test

import (
	"encoding/json"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip77/negentropy"
	"github.com/nbd-wtf/go-nostr/nip77/negentropy/storage/vector"
	"github.com/wisp-relay/wisp/relay"
)

func withNegentropy(maxEvents int) func(*relay.Config) {
	return func(c *relay.Config) {
		c.Negentropy = relay.NegentropyConfig{Enabled: true, MaxEvents: maxEvents}
	}
}

// NIP-77 is advertised only when on; when off, NEG-OPEN gets a NOTICE (which
// sync clients take as "no negentropy here").
func TestNegentropyAdvertisedOnlyWhenOn(t *testing.T) {
	off := startRelay(t)
	if slices.Contains(nip11NIPs(t, off), 77) {
		t.Error("NIP-77 advertised while off")
	}
	c := dial(t, off.url)
	c.send("NEG-OPEN", "n", map[string]any{}, "61")
	if m := c.next(); str(t, m[0]) != "NOTICE" {
		t.Errorf("got %s, want a NOTICE", join(m))
	}
	on := startRelay(t, withNegentropy(0))
	if !slices.Contains(nip11NIPs(t, on), 77) {
		t.Error("NIP-77 not advertised while on")
	}
}

// A client session against the relay finds exactly the differences; the
// event cap and bad messages get NEG-ERR.
func TestNegentropySession(t *testing.T) {
	tr := startRelay(t, withNegentropy(5))
	c := dial(t, tr.url)
	var stored []*nostr.Event
	for i := range 4 {
		ev := negEvent(t, func(e *nostr.Event) { e.Content = strings.Repeat("x", i) })
		c.mustPublish(ev)
		stored = append(stored, ev)
	}
	// The client has the first two and one the relay lacks.
	extra := negEvent(t, nil)
	vec := vector.New()
	for _, ev := range []*nostr.Event{stored[0], stored[1], extra} {
		vec.Insert(ev.CreatedAt, ev.ID)
	}
	vec.Seal()
	neg := negentropy.New(vec, 60000)
	var have, need []string
	done := make(chan struct{})
	go func() {
		for id := range neg.Haves {
			have = append(have, id)
		}
		done <- struct{}{}
	}()
	go func() {
		for id := range neg.HaveNots {
			need = append(need, id)
		}
		done <- struct{}{}
	}()
	c.send("NEG-OPEN", "n1", map[string]any{"kinds": []int{1}}, neg.Start())
	for {
		m := c.next()
		if str(t, m[0]) != "NEG-MSG" || str(t, m[1]) != "n1" {
			t.Fatalf("got %s, want NEG-MSG", join(m))
		}
		out, err := neg.Reconcile(str(t, m[2]))
		if err != nil {
			t.Fatal(err)
		}
		if out == "" {
			break
		}
		c.send("NEG-MSG", "n1", out)
	}
	<-done
	<-done
	c.send("NEG-CLOSE", "n1")
	slices.Sort(need)
	wantNeed := []string{stored[2].ID, stored[3].ID}
	slices.Sort(wantNeed)
	if !slices.Equal(have, []string{extra.ID}) || !slices.Equal(need, wantNeed) {
		t.Errorf("have %v need %v, want have [%s] need %v", have, need, extra.ID, wantNeed)
	}

	// Over the cap: refused.
	for range 2 {
		c.mustPublish(negEvent(t, nil))
	}
	c.send("NEG-OPEN", "n2", map[string]any{}, "61")
	if m := c.next(); str(t, m[0]) != "NEG-ERR" || !strings.HasPrefix(str(t, m[2]), "blocked:") {
		t.Errorf("over the cap: got %s, want NEG-ERR blocked:", join(m))
	}
	// No session, bad hex, bad filter.
	c.send("NEG-MSG", "nope", "61")
	if m := c.next(); str(t, m[0]) != "NEG-ERR" || !strings.HasPrefix(str(t, m[2]), "closed:") {
		t.Errorf("unknown session: got %s", join(m))
	}
	c.send("NEG-OPEN", "n3", map[string]any{"authors": []string{stored[0].PubKey}}, "zz")
	if m := c.next(); str(t, m[0]) != "NEG-ERR" || !strings.HasPrefix(str(t, m[2]), "invalid:") {
		t.Errorf("bad hex: got %s", join(m))
	}
	c.send("NEG-OPEN", "n4", map[string]any{"kinds": "x"}, "61")
	if m := c.next(); str(t, m[0]) != "NEG-ERR" || !strings.HasPrefix(str(t, m[2]), "invalid:") {
		t.Errorf("bad filter: got %s", join(m))
	}
}

func negEvent(t *testing.T, mod func(*nostr.Event)) *nostr.Event {
	t.Helper()
	ev := &nostr.Event{CreatedAt: nostr.Now(), Kind: 1, Tags: nostr.Tags{}, Content: "negentropy"}
	if mod != nil {
		mod(ev)
	}
	if err := ev.Sign(nostr.GeneratePrivateKey()); err != nil {
		t.Fatal(err)
	}
	return ev
}

// What NIP-77 sessions hold is bounded per connection and for the whole
// relay, and given back when a session or its connection closes.
func TestNegentropySessionsAreBounded(t *testing.T) {
	tr := startRelay(t, func(c *relay.Config) {
		c.Negentropy = relay.NegentropyConfig{Enabled: true, MaxEvents: 50, MaxTotalEvents: 60}
	})
	a := dial(t, tr.url)
	for range 40 {
		a.mustPublish(negEvent(t, nil))
	}
	open := func(c *client, id string) []json.RawMessage {
		c.send("NEG-OPEN", id, map[string]any{"kinds": []int{1}}, "61")
		return c.next()
	}
	wantErr := func(m []json.RawMessage, prefix string) {
		t.Helper()
		if str(t, m[0]) != "NEG-ERR" || !strings.HasPrefix(str(t, m[2]), prefix) {
			t.Fatalf("got %s, want NEG-ERR %s", join(m), prefix)
		}
	}
	if m := open(a, "n1"); str(t, m[0]) != "NEG-MSG" {
		t.Fatalf("first session: %s", join(m))
	}
	wantErr(open(a, "n2"), "blocked:") // this connection: 40 + 40 > 50
	b := dial(t, tr.url)
	wantErr(open(b, "n1"), "rate-limited:") // the relay: 40 + 40 > 60
	a.send("NEG-CLOSE", "n1")
	a.query("barrier", nostr.Filter{Kinds: []int{12345}}) // answered after the NEG-CLOSE is handled
	if m := open(b, "n1"); str(t, m[0]) != "NEG-MSG" {
		t.Fatalf("after NEG-CLOSE: %s", join(m))
	}
	b.ws.CloseNow()
	eventually(t, "the closed connection's session to be given back", func() bool {
		c := dial(t, tr.url)
		defer c.ws.CloseNow()
		return str(t, open(c, "n1")[0]) == "NEG-MSG"
	})
}

// A message declaring more ids than it holds is refused before the
// reconciler sizes anything by it, and the connection goes on.
func TestNegentropyMessageCountsAreChecked(t *testing.T) {
	tr := startRelay(t, withNegentropy(0))
	c := dial(t, tr.url)
	c.mustPublish(negEvent(t, nil))
	c.send("NEG-OPEN", "n", map[string]any{}, "61")
	if m := c.next(); str(t, m[0]) != "NEG-MSG" {
		t.Fatalf("NEG-OPEN: %s", join(m))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c.send("NEG-MSG", "n", "61000002"+"97d78400") // 50 million ids, none sent
	if m := c.next(); str(t, m[0]) != "NEG-ERR" || !strings.HasPrefix(str(t, m[2]), "invalid:") {
		t.Fatalf("got %s, want NEG-ERR invalid:", join(m))
	}
	runtime.ReadMemStats(&after)
	// The relay runs in this process: what it allocated for the message
	// shows here (a map sized for 50 million ids is gigabytes).
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("the relay allocated %d MB for a message of 8 bytes", grew>>20)
	}
	c.mustPublish(negEvent(t, nil))
}
