package relay_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/relay"
)

// A REQ (or COUNT) whose subscription id the relay refuses is answered with
// CLOSED, as NIP-01 asks of every refused REQ, carrying the id as sent (cut
// to the limit when too long); the connection goes on working.
func TestRefusedSubIDGetsClosed(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	long := strings.Repeat("x", 64) + "tail"
	for _, tc := range []struct{ verb, id, want string }{
		{"REQ", long, long[:64]},
		{"COUNT", long, long[:64]},
		{"REQ", "", ""},
		{"REQ", strings.Repeat("é", 70), strings.Repeat("é", 64)}, // characters, not bytes
	} {
		c.send(tc.verb, tc.id, nostr.Filter{})
		m := c.expectMsg("CLOSED")
		if got := str(t, m[1]); got != tc.want {
			t.Fatalf("%s %q: CLOSED for %q, want %q", tc.verb, tc.id, got, tc.want)
		}
		if why := str(t, m[2]); !strings.HasPrefix(why, "invalid: subscription id must be 1 to 64 characters") {
			t.Fatalf("%s %q: reason %q", tc.verb, tc.id, why)
		}
	}
	// An id that is not a string cannot be echoed: a NOTICE.
	c.sendRaw(`["REQ",7,{}]`)
	c.expectMsg("NOTICE")
	if got := c.query("ok", nostr.Filter{}); len(got) != 0 {
		t.Fatalf("events: %v", ids(got))
	}
}

// limit: 0 asks for no stored events: EOSE comes at once, with no stored
// query, and the subscription stays open for live events.
func TestLimitZeroIsLiveOnly(t *testing.T) {
	rec := newRecorder()
	tr := startRelay(t, func(cfg *relay.Config) { cfg.Metrics = rec })
	k := newKey(t)
	c := dial(t, tr.url)
	c.mustPublish(k.sign(t, 1, now(), "stored before"))

	c.send("REQ", "live", map[string]any{"kinds": []int{1}, "limit": 0})
	m := c.expectMsg("EOSE")
	if str(t, m[1]) != "live" || len(m) != 2 {
		t.Fatalf("want a plain EOSE for live, got %s", join(m))
	}
	if n := rec.get("query req ok"); n != 0 {
		t.Fatalf("%d stored queries for a limit 0 REQ, want none", n)
	}
	ev := k.sign(t, 1, now(), "live")
	dial(t, tr.url).mustPublish(ev)
	if got := c.expectEvent("live"); got.ID != ev.ID {
		t.Fatalf("live event %s, want %s", got.ID, ev.ID)
	}
	c.quiet(50 * time.Millisecond)
}
