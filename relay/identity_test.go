package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// The attack these tests replay: a malicious relay, evil.example, passes
// wisp's AUTH challenge on to a user, gets back an AUTH event the user
// signed for evil.example, and presents it to wisp with "Host:
// evil.example". wisp must take its own name from its configuration only.

const (
	publicURL = "wss://relay.example.com"
	evilHost  = "evil.example"
	evilURL   = "wss://evil.example"
)

// dialAs dials url sending host as the Host header.
func dialAs(t *testing.T, url, host string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Host: host})
	if err != nil {
		t.Fatalf("dial %s as %s: %v", url, host, err)
	}
	ws.SetReadLimit(16 << 20)
	c := &client{t: t, ws: ws, in: make(chan []json.RawMessage, 1000), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() { ws.CloseNow() })
	return c
}

// startNamedRelay runs a relay whose public URL is publicURL (or none),
// with the policy cfg over lists.
func startNamedRelay(t *testing.T, public string, cfg policy.Config, lists *policy.Lists) *testRelay {
	t.Helper()
	tr, _ := startRelayAt(t, filepath.Join(t.TempDir(), "wisp.db"), func(_ *sqlite.Store, rc *relay.Config) {
		p, err := policy.New(cfg, lists)
		if err != nil {
			t.Fatalf("policy: %v", err)
		}
		rc.Policy = p
		rc.Info.PublicURL = public
	})
	return tr
}

func TestAuthIgnoresTheHostHeader(t *testing.T) {
	victim := newKey(t)
	tr := startNamedRelay(t, publicURL, policy.Config{Auth: wisp.AuthWrite}, nil)

	c := dialAs(t, tr.url, evilHost)
	challenge := c.expectChallenge()
	res := c.authenticate(victim, challenge, evilURL)
	if res.ok || !strings.HasPrefix(res.msg, "invalid:") {
		t.Fatalf("AUTH for %s sent with Host %s: %+v, want false invalid:", evilURL, evilHost, res)
	}
	wantRefused(t, c.publish(victim.sign(t, 1, now(), "as the victim")), "auth-required")

	// The configured name works whatever the client connected to.
	c2 := dialAs(t, tr.url, evilHost)
	if res := c2.authenticate(victim, c2.expectChallenge(), publicURL+"/"); !res.ok {
		t.Fatalf("AUTH naming the public URL: %+v", res)
	}
	// The address the test dials (127.0.0.1) is not this relay's name now.
	c3 := dial(t, tr.url)
	if res := c3.authenticate(victim, c3.expectChallenge(), tr.url); res.ok {
		t.Fatalf("AUTH naming the request's address %s accepted with a public URL set", tr.url)
	}
}

func TestPrivateRelayIgnoresTheHostHeader(t *testing.T) {
	member := newKey(t)
	tr := startNamedRelay(t, publicURL, policy.Config{Auth: wisp.AuthAll}, policy.NewLists([]string{member.pk}, nil, nil, nil))

	in := dialAs(t, tr.url, "relay.example.com")
	if res := in.authenticate(member, in.expectChallenge(), publicURL); !res.ok {
		t.Fatalf("member AUTH: %+v", res)
	}
	secret := member.sign(t, 1, now(), "family news")
	in.mustPublish(secret)

	attacker := dialAs(t, tr.url, evilHost)
	if res := attacker.authenticate(member, attacker.expectChallenge(), evilURL); res.ok {
		t.Fatalf("relayed AUTH accepted: %+v", res)
	}
	attacker.send("REQ", "s", nostr.Filter{Kinds: []int{1}})
	if why := attacker.expectClosed("s"); !strings.HasPrefix(why, "auth-required:") {
		t.Fatalf("CLOSED %q, want auth-required:", why)
	}
}

func TestGiftWrapsIgnoreTheHostHeader(t *testing.T) {
	bob, wrapper := newKey(t), newKey(t)
	tr := startNamedRelay(t, publicURL, policy.Config{}, nil)
	wrap := wrapper.sign(t, nostr.KindGiftWrap, now()-60, "sealed", nostr.Tag{"p", bob.pk})
	dial(t, tr.url).mustPublish(wrap)

	attacker := dialAs(t, tr.url, evilHost)
	challenge := attacker.challengeViaDMs()
	if res := attacker.authenticate(bob, challenge, evilURL); res.ok {
		t.Fatalf("relayed AUTH accepted: %+v", res)
	}
	if got := attacker.query("q", nostr.Filter{IDs: []string{wrap.ID}}); len(got) != 0 {
		t.Fatalf("attacker read bob's gift wrap: %v", ids(got))
	}

	b := dial(t, tr.url)
	if res := b.authenticate(bob, b.challengeViaDMs(), publicURL); !res.ok {
		t.Fatalf("bob's AUTH: %+v", res)
	}
	if got := b.query("q", nostr.Filter{IDs: []string{wrap.ID}}); len(got) != 1 {
		t.Fatalf("bob reads %v, want his gift wrap", ids(got))
	}
}

// A relay without a configured URL answers only to loopback names.
func TestAuthWithoutPublicURLAcceptsOnlyLoopback(t *testing.T) {
	k := newKey(t)
	tr := startNamedRelay(t, "", policy.Config{Auth: wisp.AuthWrite}, nil)
	port := tr.url[strings.LastIndex(tr.url, ":"):]

	for _, u := range []string{"ws://localhost" + port, "ws://127.0.0.1" + port, "ws://[::1]" + port} {
		c := dial(t, tr.url)
		if res := c.authenticate(k, c.expectChallenge(), u); !res.ok {
			t.Errorf("AUTH naming %s: %+v", u, res)
		}
	}
	c := dialAs(t, tr.url, evilHost)
	if res := c.authenticate(k, c.expectChallenge(), evilURL); res.ok {
		t.Fatalf("AUTH naming %s with that Host accepted on an unconfigured relay", evilURL)
	}
}

func TestVanishIgnoresTheHostHeader(t *testing.T) {
	alice := newKey(t)
	tr := startNamedRelay(t, publicURL, policy.Config{}, nil)
	note := alice.sign(t, 1, now()-10, "still here")
	dial(t, tr.url).mustPublish(note)

	c := dialAs(t, tr.url, evilHost)
	vanish := alice.sign(t, 62, now(), "", nostr.Tag{"relay", evilURL})
	wantRefused(t, c.publish(vanish), "blocked")
	if got := c.query("q", nostr.Filter{IDs: []string{note.ID}}); len(got) != 1 {
		t.Fatalf("a request to vanish from %s deleted alice's note here", evilURL)
	}
}

func TestManagementIgnoresTheHostHeader(t *testing.T) {
	admin := newKey(t)
	tr, _ := startManagedRelay(t, filepath.Join(t.TempDir(), "wisp.db"), admin, func(cfg *relay.Config) { cfg.Info.PublicURL = publicURL })
	call := func(u, host string) int {
		body := []byte(`{"method":"supportedmethods","params":[]}`)
		auth := tr.nip98Header(t, &admin, body, func(ev *nostr.Event) { ev.Tags[0] = nostr.Tag{"u", u} })
		req, _ := http.NewRequest(http.MethodPost, tr.srv.URL+"/", bytes.NewReader(body))
		req.Host = host
		req.Header.Set("Content-Type", "application/nostr+json+rpc")
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := call("https://"+evilHost+"/", evilHost); got != http.StatusUnauthorized {
		t.Fatalf("NIP-98 for %s sent with that Host: HTTP %d, want 401", evilHost, got)
	}
	if got := call(tr.srv.URL+"/", strings.TrimPrefix(tr.srv.URL, "http://")); got != http.StatusUnauthorized {
		t.Fatalf("NIP-98 naming the request's address with a public URL set: HTTP %d, want 401", got)
	}
	if got := call("https://relay.example.com/", evilHost); got != http.StatusOK {
		t.Fatalf("NIP-98 naming the public URL: HTTP %d, want 200", got)
	}
}
