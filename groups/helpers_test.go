package groups_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip77/negentropy"
	"github.com/nbd-wtf/go-nostr/nip77/negentropy/storage/vector"
	"github.com/wisp-relay/wisp/groups"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// testRelay is a real relay with groups on, over a real SQLite file,
// behind a real HTTP server. restart stops it and starts another over the
// same file, as a new process would.
type testRelay struct {
	t      *testing.T
	path   string
	relay  *relay.Relay
	store  *sqlite.Store
	groups *groups.Groups
	srv    *httptest.Server
	url    string
	sk, pk string // the relay's own key
	cfg    groups.Config
	tune   func(*relay.Config)
}

func startRelay(t *testing.T, cfg groups.Config, tune func(*relay.Config)) *testRelay {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	cfg.SecretKey, cfg.PublicKey = sk, pk
	if cfg.MaxGroups == 0 {
		cfg.MaxGroups = 100
	}
	if cfg.MaxMembers == 0 {
		cfg.MaxMembers = 100
	}
	tr := &testRelay{t: t, path: filepath.Join(t.TempDir(), "wisp.db"), sk: sk, pk: pk, cfg: cfg, tune: tune}
	tr.start()
	t.Cleanup(tr.stop)
	return tr
}

func (tr *testRelay) start() {
	t := tr.t
	t.Helper()
	store, err := sqlite.Open(context.Background(), tr.path, sqlite.Options{SearchKinds: []int{1, 9}})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	g, err := groups.New(tr.cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Load(context.Background()); err != nil {
		t.Fatalf("load groups: %v", err)
	}
	cfg := relay.Config{Limits: relay.DefaultLimits(), Version: "test", Groups: g,
		Info:       relay.Info{Name: "groups test", Self: tr.pk},
		Negentropy: relay.NegentropyConfig{Enabled: true}}
	if tr.tune != nil {
		tr.tune(&cfg)
	}
	r := relay.New(cfg, store)
	r.Start()
	g.Start()
	tr.relay, tr.store, tr.groups = r, store, g
	tr.srv = httptest.NewServer(r)
	tr.url = "ws" + strings.TrimPrefix(tr.srv.URL, "http")
}

func (tr *testRelay) stop() {
	if tr.relay == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.relay.Shutdown(ctx); err != nil {
		tr.t.Errorf("shutdown: %v", err)
	}
	tr.srv.Close()
	tr.groups.Close()
	if err := tr.store.Close(); err != nil {
		tr.t.Errorf("close store: %v", err)
	}
	tr.relay = nil
}

// restart stops the relay and starts a new one over the same database.
func (tr *testRelay) restart() {
	tr.t.Helper()
	tr.stop()
	tr.start()
}

// key is a test identity.
type key struct{ sk, pk string }

func newKey(t *testing.T) key {
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	return key{sk, pk}
}

func now() int64 { return time.Now().Unix() }

// sign signs an event of now with content of its own, so that no two are
// the same event.
func (k key) sign(t *testing.T, kind int, tags ...nostr.Tag) *nostr.Event {
	t.Helper()
	return k.signAt(t, kind, now(), fmt.Sprint("event ", serial.Add(1)), tags...)
}

var serial atomic.Int64

func (k key) signAt(t *testing.T, kind int, createdAt int64, content string, tags ...nostr.Tag) *nostr.Event {
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

// client is a raw websocket client that speaks JSON frames.
type client struct {
	t         *testing.T
	url       string
	ws        *websocket.Conn
	in        chan []json.RawMessage
	challenge string
}

func dial(t *testing.T, url string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(16 << 20)
	c := &client{t: t, url: url, ws: ws, in: make(chan []json.RawMessage, 10000)}
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

func (c *client) send(v ...any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next message, keeping the AUTH challenge aside.
func (c *client) next() []json.RawMessage {
	c.t.Helper()
	for {
		select {
		case m := <-c.in:
			if str(c.t, m[0]) == "AUTH" {
				c.challenge = str(c.t, m[1])
				continue
			}
			return m
		case <-time.After(10 * time.Second):
			c.t.Fatal("no message from the relay within 10s")
			return nil
		}
	}
}

func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("not a string: %s", raw)
	}
	return s
}

type okResult struct {
	ok  bool
	msg string
}

// publish sends ev and returns the relay's OK.
func (c *client) publish(ev *nostr.Event) okResult {
	c.t.Helper()
	c.send("EVENT", ev)
	m := c.next()
	if str(c.t, m[0]) != "OK" || str(c.t, m[1]) != ev.ID {
		c.t.Fatalf("want OK for %s, got %s", ev.ID, m)
	}
	var ok bool
	json.Unmarshal(m[2], &ok)
	return okResult{ok, str(c.t, m[3])}
}

func (c *client) mustPublish(ev *nostr.Event) {
	c.t.Helper()
	if res := c.publish(ev); !res.ok {
		c.t.Fatalf("kind %d refused: %s", ev.Kind, res.msg)
	}
}

// refused publishes ev and checks it is refused with prefix.
func (c *client) refused(ev *nostr.Event, prefix string) string {
	c.t.Helper()
	res := c.publish(ev)
	if res.ok || !strings.HasPrefix(res.msg, prefix+":") {
		c.t.Fatalf("kind %d: OK %v %q, want refused with %s:", ev.Kind, res.ok, res.msg, prefix)
	}
	return res.msg
}

// query runs a REQ to EOSE and returns the events, or the CLOSED reason.
func (c *client) query(filters ...nostr.Filter) ([]nostr.Event, string) {
	c.t.Helper()
	args := []any{"REQ", "q"}
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
				c.t.Fatal(err)
			}
			evs = append(evs, ev)
		case "EOSE":
			c.send("CLOSE", "q")
			return evs, ""
		case "CLOSED":
			return evs, str(c.t, m[2])
		default:
			c.t.Fatalf("during REQ: %s", m)
		}
	}
}

// events runs a REQ that must be served.
func (c *client) events(filters ...nostr.Filter) []nostr.Event {
	c.t.Helper()
	evs, closed := c.query(filters...)
	if closed != "" {
		c.t.Fatalf("REQ %v closed: %s", filters, closed)
	}
	return evs
}

// count runs a COUNT and returns the count, or the CLOSED reason.
func (c *client) count(filters ...nostr.Filter) (int64, string) {
	c.t.Helper()
	args := []any{"COUNT", "n"}
	for _, f := range filters {
		args = append(args, f)
	}
	c.send(args...)
	m := c.next()
	switch str(c.t, m[0]) {
	case "COUNT":
		var res struct{ Count int64 }
		json.Unmarshal(m[2], &res)
		return res.Count, ""
	case "CLOSED":
		return 0, str(c.t, m[2])
	}
	c.t.Fatalf("COUNT answered %s", m)
	return 0, ""
}

// negIDs runs a NIP-77 session from an empty set and returns the ids the
// relay has, or the NEG-ERR reason.
func (c *client) negIDs(f nostr.Filter) ([]string, string) {
	c.t.Helper()
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
	c.send("NEG-OPEN", "neg", f, neg.Start())
	for {
		m := c.next()
		switch str(c.t, m[0]) {
		case "NEG-ERR":
			return nil, str(c.t, m[2])
		case "NEG-MSG":
		default:
			c.t.Fatalf("during NEG: %s", m)
		}
		out, err := neg.Reconcile(str(c.t, m[2]))
		if err != nil {
			c.t.Fatal(err)
		}
		if out == "" {
			c.send("NEG-CLOSE", "neg")
			<-done
			return have, ""
		}
		c.send("NEG-MSG", "neg", out)
	}
}

// auth authenticates as k, asking for the challenge with a REQ for gift
// wraps if none came yet.
func (c *client) auth(k key) {
	c.t.Helper()
	if c.challenge == "" {
		c.query(nostr.Filter{Kinds: []int{1059}})
	}
	ev := k.signAt(c.t, 22242, now(), "", nostr.Tag{"relay", c.url}, nostr.Tag{"challenge", c.challenge})
	c.send("AUTH", ev)
	m := c.next()
	var ok bool
	json.Unmarshal(m[2], &ok)
	if str(c.t, m[0]) != "OK" || !ok {
		c.t.Fatalf("AUTH: %s", m)
	}
}

func h(gid string) nostr.Tag { return nostr.Tag{"h", gid} }

func p(pk string, roles ...string) nostr.Tag { return append(nostr.Tag{"p", pk}, roles...) }

func ids(evs []nostr.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func hasID(evs []nostr.Event, id string) bool {
	for _, e := range evs {
		if e.ID == id {
			return true
		}
	}
	return false
}

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

type nip11Doc struct {
	NIPs  []int           `json:"supported_nips"`
	Self  string          `json:"self"`
	NIP29 map[string]bool `json:"nip29"`
}

func nip11(t *testing.T, tr *testRelay) nip11Doc {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, tr.srv.URL, nil)
	req.Header.Set("Accept", "application/nostr+json")
	resp, err := tr.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc nip11Doc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}
