package relay_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// testRelay is a real relay on a real SQLite file behind a real HTTP server.
type testRelay struct {
	relay *relay.Relay
	store *sqlite.Store
	srv   *httptest.Server
	url   string // ws://...
}

func startRelay(t *testing.T, tune ...func(*relay.Config)) *testRelay {
	t.Helper()
	return startRelayOpts(t, sqlite.Options{}, tune...)
}

// client is a raw websocket client that speaks JSON frames.
type client struct {
	t  *testing.T
	ws *websocket.Conn
	in chan []json.RawMessage
	mu sync.Mutex
	// closeErr is the error that ended reading.
	closeErr error
	done     chan struct{}
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	ws.SetReadLimit(16 << 20)
	c := &client{t: t, ws: ws, in: make(chan []json.RawMessage, 100000), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() { ws.CloseNow() })
	return c
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.closeErr = err
			c.mu.Unlock()
			return
		}
		var msg []json.RawMessage
		if err := json.Unmarshal(data, &msg); err != nil {
			c.t.Errorf("relay sent invalid JSON %q: %v", data, err)
			continue
		}
		c.in <- msg
	}
}

func (c *client) sendRaw(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(v ...any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(b))
}

// next returns the next message from the relay, failing after a timeout.
func (c *client) next() []json.RawMessage {
	c.t.Helper()
	select {
	case m := <-c.in:
		return m
	case <-time.After(10 * time.Second):
		c.t.Fatalf("no message from relay within 10s")
		return nil
	}
}

// quiet asserts that the relay sends nothing for d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.in:
		c.t.Fatalf("unexpected message %s", join(m))
	case <-time.After(d):
	}
}

func join(m []json.RawMessage) string {
	parts := make([]string, len(m))
	for i, p := range m {
		parts[i] = string(p)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("not a string: %s", raw)
	}
	return s
}

// okResult is a parsed OK message.
type okResult struct {
	id  string
	ok  bool
	msg string
}

func (c *client) expectOK() okResult {
	c.t.Helper()
	m := c.next()
	if len(m) != 4 || str(c.t, m[0]) != "OK" {
		c.t.Fatalf("want OK, got %s", join(m))
	}
	var ok bool
	if err := json.Unmarshal(m[2], &ok); err != nil {
		c.t.Fatalf("OK flag: %s", m[2])
	}
	return okResult{id: str(c.t, m[1]), ok: ok, msg: str(c.t, m[3])}
}

// publish sends ev and returns the relay's OK for it.
func (c *client) publish(ev *nostr.Event) okResult {
	c.t.Helper()
	c.send("EVENT", ev)
	res := c.expectOK()
	if res.id != ev.ID {
		c.t.Fatalf("OK for %s, want %s", res.id, ev.ID)
	}
	return res
}

func (c *client) mustPublish(ev *nostr.Event) {
	c.t.Helper()
	if res := c.publish(ev); !res.ok {
		c.t.Fatalf("publish %s refused: %s", ev.ID, res.msg)
	}
}

// query runs a REQ, returns the stored events up to EOSE, and closes it.
func (c *client) query(subID string, filters ...nostr.Filter) []nostr.Event {
	c.t.Helper()
	evs := c.req(subID, filters...)
	c.send("CLOSE", subID)
	return evs
}

// req opens a subscription and returns the stored events up to EOSE; the
// subscription stays open for live events.
func (c *client) req(subID string, filters ...nostr.Filter) []nostr.Event {
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
			if str(c.t, m[1]) != subID {
				c.t.Fatalf("EVENT for sub %s, want %s", m[1], subID)
			}
			var ev nostr.Event
			if err := json.Unmarshal(m[2], &ev); err != nil {
				c.t.Fatalf("bad event %s: %v", m[2], err)
			}
			evs = append(evs, ev)
		case "EOSE":
			if str(c.t, m[1]) != subID {
				c.t.Fatalf("EOSE for %s, want %s", m[1], subID)
			}
			return evs
		default:
			c.t.Fatalf("during REQ %s: unexpected %s", subID, join(m))
		}
	}
}

// expectEvent waits for a live EVENT on subID.
func (c *client) expectEvent(subID string) nostr.Event {
	c.t.Helper()
	m := c.next()
	if str(c.t, m[0]) != "EVENT" || str(c.t, m[1]) != subID {
		c.t.Fatalf("want EVENT on %s, got %s", subID, join(m))
	}
	var ev nostr.Event
	if err := json.Unmarshal(m[2], &ev); err != nil {
		c.t.Fatalf("bad event: %v", err)
	}
	return ev
}

func (c *client) expectMsg(verb string) []json.RawMessage {
	c.t.Helper()
	m := c.next()
	if str(c.t, m[0]) != verb {
		c.t.Fatalf("want %s, got %s", verb, join(m))
	}
	return m
}

// key is a test identity.
type key struct{ sk, pk string }

func newKey(t *testing.T) key {
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return key{sk, pk}
}

func (k key) sign(t *testing.T, kind int, createdAt int64, content string, tags ...nostr.Tag) *nostr.Event {
	t.Helper()
	ev := &nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(createdAt), Content: content, Tags: nostr.Tags(tags)}
	if ev.Tags == nil {
		ev.Tags = nostr.Tags{}
	}
	if err := ev.Sign(k.sk); err != nil {
		t.Fatal(err)
	}
	return ev
}

func ids(evs []nostr.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func now() int64 { return time.Now().Unix() }

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
