package relay_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/policy"
)

// Every built-in rule over a real websocket with real signatures: the event
// it should refuse is refused with the right prefix, others pass, and the
// relay keeps serving.

func TestPolicyDenyList(t *testing.T) {
	spammer, alice := newKey(t), newKey(t)
	tr := startPolicyRelay(t, policy.Config{}, policy.NewLists(nil, []string{spammer.pk}, nil, nil))
	c := dial(t, tr.url)
	wantRefused(t, c.publish(spammer.sign(t, 1, now(), "buy now")), "blocked")
	ok := alice.sign(t, 1, now(), "hello")
	c.mustPublish(ok)
	if got := c.query("q", nostr.Filter{Kinds: []int{1}}); len(got) != 1 || got[0].ID != ok.ID {
		t.Fatalf("stored %v, want only alice's note", ids(got))
	}
	// Authenticated as a denied pubkey, even someone else's event is refused.
	c2 := dial(t, tr.url)
	challenge := c2.challengeViaDMs()
	if res := c2.authenticate(spammer, challenge, tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	wantRefused(t, c2.publish(alice.sign(t, 1, now(), "laundered")), "blocked")
	c.mustPublish(alice.sign(t, 1, now(), "still serving"))
}

func TestPolicyAllowList(t *testing.T) {
	member, outsider := newKey(t), newKey(t)
	tr := startPolicyRelay(t, policy.Config{}, policy.NewLists([]string{member.pk}, nil, nil, nil))
	c := dial(t, tr.url)

	// A member's event passes from anyone (open mode): the author is allowed.
	c.mustPublish(member.sign(t, 1, now(), "from a member"))
	// An outsider's event from an unauthenticated client: authenticate first,
	// and the challenge comes before the OK.
	out := outsider.sign(t, 1, now(), "from outside")
	c.send("EVENT", out)
	challenge := c.expectChallenge()
	wantRefused(t, c.expectOK(), "auth-required")

	// Authenticated as an outsider: restricted.
	c2 := dial(t, tr.url)
	c2.send("EVENT", out)
	ch2 := c2.expectChallenge()
	wantRefused(t, c2.expectOK(), "auth-required")
	if res := c2.authenticate(outsider, ch2, tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	wantRefused(t, c2.publish(out), "restricted")

	// Authenticated as a member, the outsider's event (a repost) passes.
	if res := c.authenticate(member, challenge, tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	c.mustPublish(out)
	if got := c.query("q", nostr.Filter{Kinds: []int{1}}); len(got) != 2 {
		t.Fatalf("stored %d events, want 2", len(got))
	}
}

func TestPolicyKindLists(t *testing.T) {
	allow, err := policy.ParseKinds("0,1,3,30000-39999")
	if err != nil {
		t.Fatal(err)
	}
	deny, _ := policy.ParseKinds("30023")
	tr := startPolicyRelay(t, policy.Config{}, policy.NewLists(nil, nil, allow, deny))
	c := dial(t, tr.url)
	k := newKey(t)
	c.mustPublish(k.sign(t, 1, now(), "note"))
	c.mustPublish(k.sign(t, 30001, now(), "list", nostr.Tag{"d", "x"}))
	wantRefused(t, c.publish(k.sign(t, 7, now(), "+")), "blocked")
	wantRefused(t, c.publish(k.sign(t, 30023, now(), "article", nostr.Tag{"d", "y"})), "blocked")
	if got := c.query("q", nostr.Filter{Authors: []string{k.pk}}); len(got) != 2 {
		t.Fatalf("stored %d events, want 2", len(got))
	}
}

func TestPolicyProofOfWork(t *testing.T) {
	const bits = 8
	tr := startPolicyRelay(t, policy.Config{MinPoW: bits}, nil)
	c := dial(t, tr.url)
	k := newKey(t)

	wantRefused(t, c.publish(k.sign(t, 1, now(), "no work")), "pow")
	// Enough zero bits, but the committed target is lower: a lucky spammer.
	wantRefused(t, c.publish(k.mine(t, 1, "lucky", bits-4, bits)), "pow")
	// A committed target, but the id falls short.
	short := k.sign(t, 1, now(), "claims", nostr.Tag{"nonce", "1", "20"})
	for leadingZeros(short.ID) >= bits {
		short = k.sign(t, 1, now(), "claims again", nostr.Tag{"nonce", "2", "20"})
	}
	wantRefused(t, c.publish(short), "pow")

	good := k.mine(t, 1, "worked", bits, bits)
	c.mustPublish(good)
	if got := c.query("q", nostr.Filter{Authors: []string{k.pk}}); len(got) != 1 || got[0].ID != good.ID {
		t.Fatalf("stored %v, want the mined event", ids(got))
	}
}

func TestPolicyEventRateLimitPerIP(t *testing.T) {
	tr := startPolicyRelay(t, policy.Config{EventRateIP: policy.Rate{N: 3, Per: time.Hour}}, nil)
	noisy := dialFrom(t, tr.url, "192.0.2.1")
	k := newKey(t)
	for i := range 3 {
		noisy.mustPublish(k.sign(t, 1, now(), "burst "+string(rune('a'+i))))
	}
	wantRefused(t, noisy.publish(k.sign(t, 1, now(), "one too many")), "rate-limited")
	// Another address is not affected, and the relay serves the noisy one's reads.
	other := dialFrom(t, tr.url, "192.0.2.2")
	other.mustPublish(k.sign(t, 1, now(), "from elsewhere"))
	if got := noisy.query("q", nostr.Filter{Authors: []string{k.pk}}); len(got) != 4 {
		t.Fatalf("stored %d events, want 4", len(got))
	}
}

func TestPolicyEventRateLimitPerPubkey(t *testing.T) {
	tr := startPolicyRelay(t, policy.Config{EventRatePubkey: policy.Rate{N: 2, Per: time.Hour}}, nil)
	a := dialFrom(t, tr.url, "192.0.2.1")
	b := dialFrom(t, tr.url, "192.0.2.2")
	k, other := newKey(t), newKey(t)
	a.mustPublish(k.sign(t, 1, now(), "one"))
	b.mustPublish(k.sign(t, 1, now(), "two"))
	// The bucket follows the pubkey across addresses.
	wantRefused(t, a.publish(k.sign(t, 1, now(), "three")), "rate-limited")
	a.mustPublish(other.sign(t, 1, now(), "someone else"))

	// A forged event must not spend the victim's budget: the per-pubkey
	// limit runs after the signature check.
	victim := newKey(t)
	forged := victim.sign(t, 1, now(), "forged")
	forged.Sig = strings.Repeat("0", 128)
	for range 3 {
		wantRefused(t, a.publish(forged), "invalid")
	}
	a.mustPublish(victim.sign(t, 1, now(), "real"))
}

func TestPolicyReqRateLimit(t *testing.T) {
	tr := startPolicyRelay(t, policy.Config{ReqRateIP: policy.Rate{N: 2, Per: time.Hour}}, nil)
	c := dialFrom(t, tr.url, "192.0.2.1")
	c.query("a", nostr.Filter{Kinds: []int{1}})
	c.query("b", nostr.Filter{Kinds: []int{1}})
	c.send("REQ", "c", nostr.Filter{Kinds: []int{1}})
	if why := c.expectClosed("c"); !strings.HasPrefix(why, "rate-limited:") {
		t.Fatalf("CLOSED %q, want rate-limited:", why)
	}
	// Writes still work, and so do reads from elsewhere.
	c.mustPublish(newKey(t).sign(t, 1, now(), "still writing"))
	d := dialFrom(t, tr.url, "192.0.2.2")
	if got := d.query("d", nostr.Filter{Kinds: []int{1}}); len(got) != 1 {
		t.Fatalf("got %d events", len(got))
	}
}

func TestPolicyConnectionLimits(t *testing.T) {
	tr := startPolicyRelay(t, policy.Config{MaxConnsPerIP: 2}, nil)
	c1 := dialFrom(t, tr.url, "192.0.2.1")
	dialFrom(t, tr.url, "192.0.2.1")
	if _, resp, err := tryDial(t, tr.url, "192.0.2.1"); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third connection: err %v, resp %v; want HTTP 429", err, resp)
	} else if body, _ := io.ReadAll(resp.Body); !strings.HasPrefix(string(body), "rate-limited:") {
		t.Fatalf("refusal body %q", body)
	}
	// Closing one frees its slot.
	c1.ws.CloseNow()
	eventually(t, "a free connection slot", func() bool {
		c, _, err := tryDial(t, tr.url, "192.0.2.1")
		if err == nil {
			c.ws.CloseNow()
		}
		return err == nil
	})
	// Another address is not affected.
	dialFrom(t, tr.url, "192.0.2.9").mustPublish(newKey(t).sign(t, 1, now(), "hi"))
}

func TestPolicyConnectionRate(t *testing.T) {
	tr := startPolicyRelay(t, policy.Config{ConnRateIP: policy.Rate{N: 3, Per: time.Hour}}, nil)
	for range 3 {
		dialFrom(t, tr.url, "192.0.2.1").ws.CloseNow()
	}
	if _, resp, err := tryDial(t, tr.url, "192.0.2.1"); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth connection: err %v, resp %v; want HTTP 429", err, resp)
	}
	dialFrom(t, tr.url, "192.0.2.2").mustPublish(newKey(t).sign(t, 1, now(), "hi"))
}

func TestPolicyNIP11Limitation(t *testing.T) {
	tr := startPolicyRelay(t, policy.Config{Auth: wisp.AuthAll, MinPoW: 12}, nil)
	req, _ := http.NewRequest(http.MethodGet, tr.srv.URL+"/", nil)
	req.Header.Set("Accept", "application/nostr+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		NIPs       []int `json:"supported_nips"`
		Limitation struct {
			Auth       bool `json:"auth_required"`
			Restricted bool `json:"restricted_writes"`
			PoW        int  `json:"min_pow_difficulty"`
		} `json:"limitation"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if !doc.Limitation.Auth || !doc.Limitation.Restricted || doc.Limitation.PoW != 12 {
		t.Errorf("limitation %+v", doc.Limitation)
	}
	for _, n := range []int{13, 17, 42, 59, 62, 70} {
		if !containsInt(doc.NIPs, n) {
			t.Errorf("supported_nips %v lacks %d", doc.NIPs, n)
		}
	}
	if containsInt(doc.NIPs, 86) {
		t.Errorf("supported_nips %v has 86 without a management API", doc.NIPs)
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
