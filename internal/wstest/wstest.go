// Package wstest has what end-to-end tests of packages beside the relay
// (groups, membership) share: a raw websocket client speaking NIP-01
// frames, NIP-42 AUTH and NIP-77, and signing test identities.
package wstest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip77/negentropy"
	"github.com/nbd-wtf/go-nostr/nip77/negentropy/storage/vector"
)

// Key is a test identity.
type Key struct{ SK, PK string }

func NewKey(t *testing.T) Key {
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	return Key{sk, pk}
}

// Now is the time in unix seconds.
func Now() int64 { return time.Now().Unix() }

// Sign signs an event of now with content of its own, so that no two are
// the same event.
func (k Key) Sign(t *testing.T, kind int, tags ...nostr.Tag) *nostr.Event {
	t.Helper()
	return k.SignAt(t, kind, Now(), fmt.Sprint("event ", serial.Add(1)), tags...)
}

var serial atomic.Int64

func (k Key) SignAt(t *testing.T, kind int, createdAt int64, content string, tags ...nostr.Tag) *nostr.Event {
	t.Helper()
	ev := &nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(createdAt), Content: content, Tags: nostr.Tags(tags)}
	if ev.Tags == nil {
		ev.Tags = nostr.Tags{}
	}
	if err := ev.Sign(k.SK); err != nil {
		t.Fatal(err)
	}
	return ev
}

// Client is a raw websocket client that speaks JSON frames.
type Client struct {
	T         *testing.T
	URL       string
	ws        *websocket.Conn
	in        chan []json.RawMessage
	Challenge string
}

func Dial(t *testing.T, url string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(16 << 20)
	c := &Client{T: t, URL: url, ws: ws, in: make(chan []json.RawMessage, 10000)}
	go func() {
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var m []json.RawMessage
			if json.Unmarshal(data, &m) == nil && len(m) > 0 {
				c.in <- m
			}
		}
	}()
	t.Cleanup(func() { ws.CloseNow() })
	return c
}

// Close closes the connection normally.
func (c *Client) Close() { c.ws.Close(websocket.StatusNormalClosure, "") }

func (c *Client) Send(v ...any) {
	c.T.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.T.Fatalf("write: %v", err)
	}
}

// Next returns the next message, keeping the AUTH challenge aside.
func (c *Client) Next() []json.RawMessage {
	c.T.Helper()
	for {
		select {
		case m := <-c.in:
			if Str(c.T, m[0]) == "AUTH" {
				c.Challenge = Str(c.T, m[1])
				continue
			}
			return m
		case <-time.After(10 * time.Second):
			c.T.Fatal("no message from the relay within 10s")
			return nil
		}
	}
}

// Str decodes a JSON string, failing the test if it is none.
func Str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("not a string: %s", raw)
	}
	return s
}

// OK is a relay's OK answer.
type OK struct {
	OK  bool
	Msg string
}

// Publish sends ev and returns the relay's OK.
func (c *Client) Publish(ev *nostr.Event) OK {
	c.T.Helper()
	c.Send("EVENT", ev)
	m := c.Next()
	if Str(c.T, m[0]) != "OK" || Str(c.T, m[1]) != ev.ID {
		c.T.Fatalf("want OK for %s, got %s", ev.ID, m)
	}
	var ok bool
	json.Unmarshal(m[2], &ok)
	return OK{ok, Str(c.T, m[3])}
}

func (c *Client) MustPublish(ev *nostr.Event) {
	c.T.Helper()
	if res := c.Publish(ev); !res.OK {
		c.T.Fatalf("kind %d refused: %s", ev.Kind, res.Msg)
	}
}

// Refused publishes ev and checks it is refused with prefix.
func (c *Client) Refused(ev *nostr.Event, prefix string) string {
	c.T.Helper()
	res := c.Publish(ev)
	if res.OK || !strings.HasPrefix(res.Msg, prefix+":") {
		c.T.Fatalf("kind %d: OK %v %q, want refused with %s:", ev.Kind, res.OK, res.Msg, prefix)
	}
	return res.Msg
}

// Query runs a REQ to EOSE and returns the events, or the CLOSED reason.
// Each REQ has a subscription id of its own: a live event the relay sent
// on an earlier one before it saw that one's CLOSE is left out.
func (c *Client) Query(filters ...nostr.Filter) ([]nostr.Event, string) {
	c.T.Helper()
	subID := fmt.Sprint("q", serial.Add(1))
	args := []any{"REQ", subID}
	for _, f := range filters {
		args = append(args, f)
	}
	c.Send(args...)
	var evs []nostr.Event
	for {
		m := c.Next()
		verb := Str(c.T, m[0])
		if verb != "NOTICE" && Str(c.T, m[1]) != subID {
			continue
		}
		switch verb {
		case "EVENT":
			var ev nostr.Event
			if err := json.Unmarshal(m[2], &ev); err != nil {
				c.T.Fatal(err)
			}
			evs = append(evs, ev)
		case "EOSE":
			c.Send("CLOSE", subID)
			return evs, ""
		case "CLOSED":
			return evs, Str(c.T, m[2])
		default:
			c.T.Fatalf("during REQ: %s", m)
		}
	}
}

// Events runs a REQ that must be served.
func (c *Client) Events(filters ...nostr.Filter) []nostr.Event {
	c.T.Helper()
	evs, closed := c.Query(filters...)
	if closed != "" {
		c.T.Fatalf("REQ %v closed: %s", filters, closed)
	}
	return evs
}

// Count runs a COUNT and returns the count, or the CLOSED reason.
func (c *Client) Count(filters ...nostr.Filter) (int64, string) {
	c.T.Helper()
	args := []any{"COUNT", "n"}
	for _, f := range filters {
		args = append(args, f)
	}
	c.Send(args...)
	m := c.Next()
	switch Str(c.T, m[0]) {
	case "COUNT":
		var res struct{ Count int64 }
		json.Unmarshal(m[2], &res)
		return res.Count, ""
	case "CLOSED":
		return 0, Str(c.T, m[2])
	}
	c.T.Fatalf("COUNT answered %s", m)
	return 0, ""
}

// NegIDs runs a NIP-77 session from an empty set and returns the ids the
// relay has, or the NEG-ERR reason.
func (c *Client) NegIDs(f nostr.Filter) ([]string, string) {
	c.T.Helper()
	vec := vector.New()
	vec.Seal()
	neg := negentropy.New(vec, 60000)
	var have []string
	done := make(chan struct{})
	go func() {
		for id := range neg.HaveNots {
			have = append(have, id)
		}
		close(done)
	}()
	go func() {
		for range neg.Haves {
		}
	}()
	c.Send("NEG-OPEN", "neg", f, neg.Start())
	for {
		m := c.Next()
		switch Str(c.T, m[0]) {
		case "NEG-ERR":
			return nil, Str(c.T, m[2])
		case "NEG-MSG":
		default:
			c.T.Fatalf("during NEG: %s", m)
		}
		out, err := neg.Reconcile(Str(c.T, m[2]))
		if err != nil {
			c.T.Fatal(err)
		}
		if out == "" {
			c.Send("NEG-CLOSE", "neg")
			<-done
			return have, ""
		}
		c.Send("NEG-MSG", "neg", out)
	}
}

// Auth authenticates as k, asking for the challenge with a REQ for gift
// wraps if none came yet.
func (c *Client) Auth(k Key) {
	c.T.Helper()
	if c.Challenge == "" {
		c.Query(nostr.Filter{Kinds: []int{1059}})
	}
	ev := k.SignAt(c.T, 22242, Now(), "", nostr.Tag{"relay", c.URL}, nostr.Tag{"challenge", c.Challenge})
	c.Send("AUTH", ev)
	m := c.Next()
	var ok bool
	json.Unmarshal(m[2], &ok)
	if Str(c.T, m[0]) != "OK" || !ok {
		c.T.Fatalf("AUTH: %s", m)
	}
}

// H is an h tag naming group gid.
func H(gid string) nostr.Tag { return nostr.Tag{"h", gid} }

// P is a p tag naming pk, with roles.
func P(pk string, roles ...string) nostr.Tag { return append(nostr.Tag{"p", pk}, roles...) }

// IDs lists the events' ids.
func IDs(evs []nostr.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// HasID reports whether an event of evs has id.
func HasID(evs []nostr.Event, id string) bool {
	for _, e := range evs {
		if e.ID == id {
			return true
		}
	}
	return false
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
