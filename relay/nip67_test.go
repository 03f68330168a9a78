package relay_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/relay"
)

// reqHint runs a REQ and returns its stored events and the NIP-67 hint of
// its EOSE ("" when EOSE carries none).
func (c *client) reqHint(subID string, filters ...nostr.Filter) ([]nostr.Event, string) {
	c.t.Helper()
	args := []any{"REQ", subID}
	for _, f := range filters {
		args = append(args, f)
	}
	c.send(args...)
	var evs []nostr.Event
	for {
		m := c.next()
		switch str(c.t, m[0]) {
		case "EVENT":
			var ev nostr.Event
			if err := json.Unmarshal(m[2], &ev); err != nil {
				c.t.Fatalf("bad event %s: %v", m[2], err)
			}
			evs = append(evs, ev)
		case "EOSE":
			c.send("CLOSE", subID)
			switch len(m) {
			case 2:
				return evs, ""
			case 3:
				var hints []string
				if err := json.Unmarshal(m[2], &hints); err != nil || len(hints) != 1 {
					c.t.Fatalf("EOSE hints %s", m[2])
				}
				return evs, hints[0]
			}
			c.t.Fatalf("EOSE %s", join(m))
		default:
			c.t.Fatalf("during REQ %s: unexpected %s", subID, join(m))
		}
	}
}

// NIP-67: EOSE says ["finish"] when every stored match was sent and
// ["more"] when the relay holds more; a created_at tie at the limit's
// boundary is sent whole.
func TestEOSECompleteness(t *testing.T) {
	tr := startRelay(t, func(c *relay.Config) { c.Limits.MaxLimit = 50 })
	c := dial(t, tr.url)
	k, other := newKey(t), newKey(t)
	base := now() - 1000
	// Seconds: 10 events one per second, then a pair sharing a second at
	// the end (the oldest).
	var all []*nostr.Event
	for i := range 10 {
		all = append(all, k.sign(t, 1, base-int64(i), fmt.Sprint("note ", i)))
	}
	tieA := k.sign(t, 1, base-10, "tie a")
	tieB := k.sign(t, 1, base-10, "tie b")
	all = append(all, tieA, tieB)
	for _, ev := range all {
		c.mustPublish(ev)
	}
	mine := nostr.Filter{Authors: []string{k.pk}}
	with := func(f nostr.Filter, limit int) nostr.Filter { f.Limit = limit; return f }

	for _, tc := range []struct {
		name    string
		filters []nostr.Filter
		events  int
		hint    string
	}{
		{"one id", []nostr.Filter{{IDs: []string{all[3].ID}}}, 1, "finish"},
		{"nothing matches", []nostr.Filter{{Authors: []string{other.pk}}}, 0, "finish"},
		{"under the limit", []nostr.Filter{with(mine, 20)}, 12, "finish"},
		{"exactly the limit", []nostr.Filter{with(mine, 12)}, 12, "finish"},
		{"limit reached", []nostr.Filter{with(mine, 3)}, 3, "more"},
		// The 11th event shares its second with the 12th: both go out, and
		// nothing is older.
		{"tie at the end", []nostr.Filter{with(mine, 11)}, 12, "finish"},
		{"two filters, both short", []nostr.Filter{with(mine, 20), {Authors: []string{other.pk}, Limit: 15}}, 12, "finish"},
		// With several filters the relay cannot tell which reached its limit.
		{"two filters, one full", []nostr.Filter{with(mine, 3), {Authors: []string{other.pk}, Limit: 5}}, 3, ""},
	} {
		got, hint := c.reqHint("s", tc.filters...)
		if len(got) != tc.events || hint != tc.hint {
			t.Errorf("%s: %d events, hint %q; want %d, %q", tc.name, len(got), hint, tc.events, tc.hint)
		}
	}

	// A tie that is not the last second: the pair is sent whole, then
	// "more" since an older event exists.
	older := k.sign(t, 1, base-11, "older")
	c.mustPublish(older)
	got, hint := c.reqHint("tie", with(mine, 11))
	if len(got) != 12 || hint != "more" {
		t.Fatalf("tie before older events: %d events, hint %q; want 12, more", len(got), hint)
	}
	if !slices.ContainsFunc(got, func(e nostr.Event) bool { return e.ID == tieA.ID }) ||
		!slices.ContainsFunc(got, func(e nostr.Event) bool { return e.ID == tieB.ID }) {
		t.Fatalf("the tie was split: %v", ids(got))
	}
	// Paging on from the oldest second sent misses nothing.
	until := nostr.Timestamp(base - 11)
	rest, hint := c.reqHint("page", nostr.Filter{Authors: []string{k.pk}, Until: &until, Limit: 11})
	if len(rest) != 1 || rest[0].ID != older.ID || hint != "finish" {
		t.Fatalf("next page: %v, hint %q", ids(rest), hint)
	}
}

// The relay says it speaks NIP-67.
func TestNIP11ListsNIP67(t *testing.T) {
	tr := startRelay(t)
	if nips := nip11NIPs(t, tr); !slices.Contains(nips, 67) {
		t.Fatalf("supported_nips %v lacks 67", nips)
	}
}
