package relay_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/relay"
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

// stored is how many 4 KB notes publishBulk stores: 8 MB, more than the
// sockets' buffers take.
const stored = 2000

// publishBulk publishes n notes of k's of 4 KB, the OKs awaited after.
func publishBulk(t *testing.T, pub *client, k key, n int) {
	t.Helper()
	base := now()
	for i := range n {
		pub.send("EVENT", k.sign(t, 1, base-int64(i), strings.Repeat("x", 4000)))
	}
	for range n {
		if res := pub.expectOK(); !res.ok {
			t.Fatalf("publish: %+v", res)
		}
	}
}

// dialSlow dials with a small socket receive buffer, so that what the
// client does not read stays queued in the relay, as a slow phone's would.
func dialSlow(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	dialer := &net.Dialer{}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(64 << 10)
		}
		return c, err
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(16 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// A big stored answer on its way to a slow client fills only half the
// outbound budget, so live events for its other subscriptions still fit
// and the client is not taken for a slow consumer.
func TestBigAnswerLeavesRoomForLiveEvents(t *testing.T) {
	const budget = 64 << 10
	tr := startRelay(t, func(c *relay.Config) { c.Limits.MaxPendingBytes = budget })
	pub, k := dial(t, tr.url), newKey(t)
	publishBulk(t, pub, k, stored)

	slow := dialSlow(t, tr.url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range []string{`["REQ","live",{"kinds":[7],"limit":0}]`, `["REQ","big",{"kinds":[1],"limit":5000}]`} {
		if err := slow.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the answer to fill the slow client's queue", func() bool {
		return tr.relay.Stats().QueuedBytes >= budget/2-8<<10
	})
	for i := range 5 {
		pub.mustPublish(k.sign(t, 7, now(), strings.Repeat("+", 2000)+fmt.Sprint(i)))
	}

	got := map[string]int{}
	for got["EOSE"] < 2 || got["live"] < 5 {
		_, data, err := slow.Read(ctx)
		if err != nil {
			t.Fatalf("after %v: %v (evicted as a slow consumer?)", got, err)
		}
		var msg []json.RawMessage
		if err := json.Unmarshal(data, &msg); err != nil {
			t.Fatal(err)
		}
		switch verb := str(t, msg[0]); verb {
		case "EVENT":
			got[str(t, msg[1])]++
		default:
			got[verb]++
		}
	}
	if got["big"] != stored {
		t.Fatalf("got %v, want %d stored events", got, stored)
	}
	// And the connection is still there.
	if err := slow.Write(ctx, websocket.MessageText, []byte(`["REQ","after",{"ids":[]}]`)); err != nil {
		t.Fatal(err)
	}
	if _, data, err := slow.Read(ctx); err != nil || !strings.HasPrefix(string(data), `["EOSE","after"`) {
		t.Fatalf("after the answer: %s %v, want EOSE", data, err)
	}
}

// The query timeout bounds the work of a stored query, not the time a
// slow client takes to read its answer: a phone on a poor network gets its
// whole answer however long it takes.
func TestSlowReaderGetsTheWholeAnswer(t *testing.T) {
	const timeout = 2 * time.Second // what the query's work takes even on a loaded machine
	tr := startRelay(t, func(c *relay.Config) { c.Limits.QueryTimeout = timeout })
	pub, k := dial(t, tr.url), newKey(t)
	publishBulk(t, pub, k, stored)
	slow := dialSlow(t, tr.url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := slow.Write(ctx, websocket.MessageText, []byte(`["REQ","big",{"kinds":[1],"limit":5000}]`)); err != nil {
		t.Fatal(err)
	}
	start, events := time.Now(), 0
	for {
		_, data, err := slow.Read(ctx)
		if err != nil {
			t.Fatalf("after %d events: %v", events, err)
		}
		if strings.HasPrefix(string(data), `["EOSE"`) {
			break
		}
		if !strings.HasPrefix(string(data), `["EVENT"`) {
			t.Fatalf("after %d events, %.80s", events, data)
		}
		events++
		if events%100 == 0 {
			time.Sleep(150 * time.Millisecond) // a slow reader: 3 s in all
		}
	}
	if events != stored {
		t.Fatalf("%d events, want %d", events, stored)
	}
	if time.Since(start) < timeout {
		t.Fatal("the answer came faster than the query timeout: the test proves nothing")
	}
}
