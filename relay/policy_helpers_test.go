package relay_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// startRelayAt is startRelay on a given database file, with a tune that
// also sees the store (to build an admin over it). The relay trusts
// X-Forwarded-For, so tests can speak from many addresses.
// The returned stop shuts it down early (to restart on the same file).
func startRelayAt(t *testing.T, path string, tune func(*sqlite.Store, *relay.Config)) (*testRelay, func()) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	cfg := relay.Config{Limits: relay.DefaultLimits(), Version: "test", Info: relay.Info{Name: "test relay"}, RealIPHeader: "X-Forwarded-For"}
	if tune != nil {
		tune(store, &cfg)
	}
	r := relay.New(cfg, store)
	r.Start()
	srv := httptest.NewServer(r)
	tr := &testRelay{relay: r, store: store, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
		if p, ok := cfg.Policy.(*policy.Policy); ok {
			p.Close()
		}
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	}
	t.Cleanup(stop)
	return tr, stop
}

// startPolicyRelay runs a relay with a policy built from cfg over lists
// (nil: empty lists).
func startPolicyRelay(t *testing.T, cfg policy.Config, lists *policy.Lists) *testRelay {
	t.Helper()
	tr, _ := startRelayAt(t, filepath.Join(t.TempDir(), "wisp.db"), func(_ *sqlite.Store, rc *relay.Config) {
		p, err := policy.New(cfg, lists)
		if err != nil {
			t.Fatalf("policy: %v", err)
		}
		rc.Policy = p
	})
	return tr
}

// dialFrom dials as if from ip (through X-Forwarded-For).
func dialFrom(t *testing.T, url, ip string) *client {
	t.Helper()
	c, resp, err := tryDial(t, url, ip)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s from %s: %v (HTTP %d)", url, ip, err, status)
	}
	return c
}

// tryDial dials from ip and returns the HTTP response of a refused upgrade.
func tryDial(t *testing.T, url, ip string) (*client, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{}
	if ip != "" {
		h.Set("X-Forwarded-For", ip)
	}
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, resp, err
	}
	ws.SetReadLimit(16 << 20)
	c := &client{t: t, ws: ws, in: make(chan []json.RawMessage, 10000), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() { ws.CloseNow() })
	return c, resp, nil
}

// expectChallenge waits for ["AUTH", challenge].
func (c *client) expectChallenge() string {
	c.t.Helper()
	m := c.expectMsg("AUTH")
	if len(m) != 2 {
		c.t.Fatalf("AUTH message %s", join(m))
	}
	return str(c.t, m[1])
}

// challengeViaDMs gets the connection's challenge in an open relay, where
// it is sent only with a first auth-required: by asking for gift wraps.
func (c *client) challengeViaDMs() string {
	c.t.Helper()
	c.send("REQ", "dms", nostr.Filter{Kinds: []int{nostr.KindGiftWrap}})
	challenge := c.expectChallenge()
	if why := c.expectClosed("dms"); !strings.HasPrefix(why, "auth-required:") {
		c.t.Fatalf("CLOSED %q, want auth-required:", why)
	}
	return challenge
}

// authEvent is a NIP-42 auth event of k.
func (k key) authEvent(t *testing.T, challenge, relayURL string, createdAt int64) *nostr.Event {
	return k.sign(t, nostr.KindClientAuthentication, createdAt, "",
		nostr.Tag{"relay", relayURL}, nostr.Tag{"challenge", challenge})
}

// authenticate runs the AUTH exchange as k with a challenge already read.
func (c *client) authenticate(k key, challenge, relayURL string) okResult {
	c.t.Helper()
	ev := k.authEvent(c.t, challenge, relayURL, now())
	c.send("AUTH", ev)
	res := c.expectOK()
	if res.id != ev.ID {
		c.t.Fatalf("OK for %s, want the AUTH event %s", res.id, ev.ID)
	}
	return res
}

// expectClosed waits for CLOSED on subID and returns its reason.
func (c *client) expectClosed(subID string) string {
	c.t.Helper()
	m := c.expectMsg("CLOSED")
	if str(c.t, m[1]) != subID {
		c.t.Fatalf("CLOSED for %s, want %s", m[1], subID)
	}
	return str(c.t, m[2])
}

func wantRefused(t *testing.T, res okResult, prefix string) {
	t.Helper()
	if res.ok || !strings.HasPrefix(res.msg, prefix+":") {
		t.Fatalf("OK = %+v, want false with %s:", res, prefix)
	}
}

// mine adds a nonce tag committing to target and searches for an id with
// at least bits leading zero bits, then signs.
func (k key) mine(t *testing.T, kind int, content string, target, bits int) *nostr.Event {
	t.Helper()
	ev := &nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(now()), Content: content, PubKey: k.pk}
	for n := 0; ; n++ {
		ev.Tags = nostr.Tags{{"nonce", strconv.Itoa(n), strconv.Itoa(target)}}
		if leadingZeros(ev.GetID()) >= bits {
			break
		}
	}
	if err := ev.Sign(k.sk); err != nil {
		t.Fatal(err)
	}
	return ev
}

func leadingZeros(id string) int {
	n := 0
	for _, c := range id {
		v, _ := strconv.ParseUint(string(c), 16, 8)
		if v == 0 {
			n += 4
			continue
		}
		for m := uint64(8); m > 0 && v&m == 0; m >>= 1 {
			n++
		}
		break
	}
	return n
}
