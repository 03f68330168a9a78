package relay_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

// manyIDs is n distinct ids (matching nothing stored).
func manyIDs(seed, n int) []string {
	out := make([]string, n)
	for i := range out {
		h := sha256.Sum256(fmt.Appendf(nil, "%d/%d", seed, i))
		out[i] = hex.EncodeToString(h[:])
	}
	return out
}

// The open subscriptions of one connection are bounded in bytes, not only
// in number: 50 subscriptions of 10 filters of 500 ids each held 110 MB.
func TestSubscriptionsAreBoundedInBytes(t *testing.T) {
	tr := startRelay(t) // defaults: 2 MiB
	c := dial(t, tr.url)
	big := func(seed int) []nostr.Filter { // about 800 KB held
		fs := make([]nostr.Filter, 10)
		for i := range fs {
			fs[i] = nostr.Filter{IDs: manyIDs(seed*10+i, 500)}
		}
		return fs
	}
	c.req("a", big(1)...)
	c.req("b", big(2)...)
	c.req("b", big(3)...) // replacing b frees what it held
	c.send(append([]any{"REQ", "c"}, anys(big(4))...)...)
	if why := c.expectClosed("c"); !strings.HasPrefix(why, "blocked:") || !strings.Contains(why, "bytes") {
		t.Fatalf("CLOSED %q, want blocked: naming the bytes", why)
	}
	// Small subscriptions still fit, and closing one frees its share.
	c.req("small", nostr.Filter{Kinds: []int{1}})
	c.send("CLOSE", "a")
	c.req("c", big(4)...)

	// The budget is the connection's: another connection has its own.
	d := dial(t, tr.url)
	d.req("a", big(5)...)

	// A live event still reaches every matching subscription.
	k := newKey(t)
	ev := k.sign(t, 1, now(), "after all that")
	d.mustPublish(ev)
	if got := c.expectEvent("small"); got.ID != ev.ID {
		t.Fatalf("live %s, want %s", got.ID, ev.ID)
	}
}

func anys(fs []nostr.Filter) []any {
	out := make([]any, len(fs))
	for i := range fs {
		out[i] = fs[i]
	}
	return out
}
