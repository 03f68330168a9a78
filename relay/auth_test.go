package relay_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/policy"
)

func TestAuthChecksTheEvent(t *testing.T) {
	tr := startPolicyRelay(t, policy.Config{Auth: wisp.AuthWrite}, nil)
	c := dial(t, tr.url)
	challenge := c.expectChallenge() // sent at connect when AUTH is required
	k := newKey(t)

	badSig := k.authEvent(t, challenge, tr.url, now())
	badSig.Sig = strings.Repeat("0", 128)
	cases := map[string]*nostr.Event{
		"wrong challenge": k.authEvent(t, "not-the-challenge", tr.url, now()),
		"other relay":     k.authEvent(t, challenge, "wss://relay.example.com", now()),
		"too old":         k.authEvent(t, challenge, tr.url, now()-11*60),
		"in the future":   k.authEvent(t, challenge, tr.url, now()+11*60),
		"wrong kind":      k.sign(t, 1, now(), "", nostr.Tag{"relay", tr.url}, nostr.Tag{"challenge", challenge}),
		"bad signature":   badSig,
	}
	for name, ev := range cases {
		c.send("AUTH", ev)
		if res := c.expectOK(); res.id != ev.ID || res.ok || !strings.HasPrefix(res.msg, "invalid:") {
			t.Errorf("%s: OK %+v, want false invalid:", name, res)
		}
	}
	// Still unauthenticated.
	wantRefused(t, c.publish(k.sign(t, 1, now(), "not yet")), "auth-required")

	// The relay tag may differ in scheme, port, path and case; the host matters.
	ok := k.authEvent(t, challenge, strings.ToUpper(strings.Replace(tr.url, "ws://", "wss://", 1))+"/", now())
	c.send("AUTH", ok)
	if res := c.expectOK(); !res.ok || res.id != ok.ID {
		t.Fatalf("valid AUTH: %+v", res)
	}
	c.mustPublish(k.sign(t, 1, now(), "now"))

	// An AUTH event is never stored, nor broadcast; a replay on another
	// connection fails its challenge.
	if got := c.query("q", nostr.Filter{Kinds: []int{nostr.KindClientAuthentication}}); len(got) != 0 {
		t.Fatalf("auth events stored: %v", ids(got))
	}
	c2 := dial(t, tr.url)
	c2.expectChallenge()
	c2.send("AUTH", ok)
	if res := c2.expectOK(); res.ok {
		t.Fatal("replayed AUTH accepted on another connection")
	}
	// Kind 22242 sent as an EVENT is refused.
	wantRefused(t, c.publish(k.authEvent(t, challenge, tr.url, now())), "invalid")
}

func TestAuthModeAll(t *testing.T) {
	member, stranger := newKey(t), newKey(t)
	tr := startPolicyRelay(t, policy.Config{Auth: wisp.AuthAll}, policy.NewLists([]string{member.pk}, nil, nil, nil))

	c := dial(t, tr.url)
	challenge := c.expectChallenge()
	c.send("REQ", "s", nostr.Filter{Kinds: []int{1}})
	if why := c.expectClosed("s"); !strings.HasPrefix(why, "auth-required:") {
		t.Fatalf("CLOSED %q, want auth-required:", why)
	}
	wantRefused(t, c.publish(member.sign(t, 1, now(), "x")), "auth-required")

	s := dial(t, tr.url)
	if res := s.authenticate(stranger, s.expectChallenge(), tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	s.send("REQ", "s", nostr.Filter{Kinds: []int{1}})
	if why := s.expectClosed("s"); !strings.HasPrefix(why, "restricted:") {
		t.Fatalf("CLOSED %q, want restricted:", why)
	}
	wantRefused(t, s.publish(stranger.sign(t, 1, now(), "let me in")), "restricted")

	if res := c.authenticate(member, challenge, tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	note := member.sign(t, 1, now(), "family news")
	c.mustPublish(note)
	if got := c.query("q", nostr.Filter{Kinds: []int{1}}); len(got) != 1 || got[0].ID != note.ID {
		t.Fatalf("member reads %v", ids(got))
	}

	// The member's client authenticates as the stranger too, on the same
	// connection: every pubkey it authenticated as counts, so it still
	// reads, and writes what the stranger signed.
	if res := c.authenticate(stranger, challenge, tr.url); !res.ok {
		t.Fatalf("second AUTH: %+v", res)
	}
	if got := c.query("q", nostr.Filter{Kinds: []int{1}}); len(got) != 1 {
		t.Fatalf("after AUTH as the stranger too, reads %v", ids(got))
	}
	c.mustPublish(stranger.sign(t, 1, now(), "through my member friend"))
}

func TestProtectedEvents(t *testing.T) {
	tr := startRelay(t) // NIP-70 holds without any policy
	alice, mallory := newKey(t), newKey(t)
	protected := alice.sign(t, 1, now(), "only from me", nostr.Tag{"-"})

	c := dial(t, tr.url)
	c.send("EVENT", protected)
	challenge := c.expectChallenge()
	wantRefused(t, c.expectOK(), "auth-required")

	m := dial(t, tr.url)
	if res := m.authenticate(mallory, m.challengeViaDMs(), tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	wantRefused(t, m.publish(protected), "restricted")

	if res := c.authenticate(alice, challenge, tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	c.mustPublish(protected)
	// Unprotected events need no AUTH, and others still read the protected one.
	m.mustPublish(mallory.sign(t, 1, now(), "plain"))
	if got := m.query("q", nostr.Filter{IDs: []string{protected.ID}}); len(got) != 1 {
		t.Fatalf("protected event not served: %v", ids(got))
	}
}

// Gift wraps and kind 4 messages reach only their recipients (and, for
// kind 4, the author): not in stored results, not live, whatever the filter.
func TestPrivateMessagesOnlyForRecipients(t *testing.T) {
	tr := startRelay(t)
	alice, bob, carol := newKey(t), newKey(t), newKey(t)
	wrapper := newKey(t) // gift wraps are signed by a throwaway key
	wrap := wrapper.sign(t, nostr.KindGiftWrap, now()-3600, "sealed", nostr.Tag{"p", bob.pk})
	dm := alice.sign(t, nostr.KindEncryptedDirectMessage, now(), "ciphertext", nostr.Tag{"p", bob.pk})
	public := alice.sign(t, 1, now(), "public")

	pub := dial(t, tr.url)
	for _, ev := range []*nostr.Event{wrap, dm, public} {
		pub.mustPublish(ev) // anyone may deliver a private message
	}

	catchAll := nostr.Filter{}
	byID := nostr.Filter{IDs: []string{wrap.ID, dm.ID, public.ID}}
	// Unauthenticated: only the public note, and asking for private kinds
	// only is auth-required.
	for _, f := range []nostr.Filter{catchAll, byID, {Authors: []string{alice.pk, wrapper.pk}}} {
		if got := pub.query("q", f); len(got) != 1 || got[0].ID != public.ID {
			t.Fatalf("unauthenticated %+v: %v", f, ids(got))
		}
	}
	challenge := pub.challengeViaDMs()

	// Carol, authenticated, sees no one else's messages.
	if res := pub.authenticate(carol, challenge, tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	if got := pub.query("q", byID); len(got) != 1 {
		t.Fatalf("carol sees %v", ids(got))
	}
	if got := pub.query("q2", nostr.Filter{Kinds: []int{nostr.KindGiftWrap}, Tags: nostr.TagMap{"p": {bob.pk}}}); len(got) != 0 {
		t.Fatalf("carol sees bob's gift wraps %v", ids(got))
	}

	// Bob sees both; Alice sees her kind 4 but not Bob's gift wrap.
	b := dial(t, tr.url)
	if res := b.authenticate(bob, b.challengeViaDMs(), tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	if got := b.query("q", byID); len(got) != 3 {
		t.Fatalf("bob sees %v, want 3", ids(got))
	}
	a := dial(t, tr.url)
	if res := a.authenticate(alice, a.challengeViaDMs(), tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	if got := a.query("q", byID); len(got) != 2 {
		t.Fatalf("alice sees %v, want her note and her DM", ids(got))
	}
}

func TestPrivateMessagesLive(t *testing.T) {
	tr := startRelay(t)
	bob, carol, wrapper := newKey(t), newKey(t), newKey(t)

	b := dial(t, tr.url)
	if res := b.authenticate(bob, b.challengeViaDMs(), tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	cc := dial(t, tr.url)
	if res := cc.authenticate(carol, cc.challengeViaDMs(), tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	anon := dial(t, tr.url)
	for _, c := range []*client{b, cc, anon} {
		if got := c.req("live", nostr.Filter{}); len(got) != 0 {
			t.Fatalf("stored events: %v", ids(got))
		}
	}
	wrap := wrapper.sign(t, nostr.KindGiftWrap, now()-60, "sealed", nostr.Tag{"p", bob.pk})
	note := wrapper.sign(t, 1, now(), "public")
	sender := dial(t, tr.url)
	sender.mustPublish(wrap)
	sender.mustPublish(note)
	if ev := b.expectEvent("live"); ev.ID != wrap.ID {
		t.Fatalf("bob got %s first, want the gift wrap", ev.ID)
	}
	for _, c := range []*client{cc, anon} {
		if ev := c.expectEvent("live"); ev.ID != note.ID {
			t.Fatalf("got %s, want only the public note", ev.ID)
		}
		c.quiet(100 * time.Millisecond)
	}
}

// Each AUTH costs a signature check outside any rate limit, so one
// connection gets a bounded number.
func TestAuthAttemptsAreBounded(t *testing.T) {
	tr := startPolicyRelay(t, policy.Config{Auth: wisp.AuthWrite}, nil)
	c := dial(t, tr.url)
	challenge := c.expectChallenge()
	k := newKey(t)
	for i := range 20 {
		ev := k.authEvent(t, challenge, "wss://elsewhere.example.com", now()-int64(i))
		c.send("AUTH", ev)
		if res := c.expectOK(); res.ok || !strings.HasPrefix(res.msg, "invalid:") {
			t.Fatalf("attempt %d: %+v", i, res)
		}
	}
	c.send("AUTH", k.authEvent(t, challenge, tr.url, now()))
	if res := c.expectOK(); res.ok || !strings.HasPrefix(res.msg, "rate-limited:") {
		t.Fatalf("21st attempt: %+v", res)
	}
}

// NIP-42: a client may authenticate as several pubkeys on one connection,
// and the relay must treat every one of them as authenticated: for
// protected events (NIP-70) and for private messages alike.
func TestAuthAsSeveralPubkeys(t *testing.T) {
	tr := startRelay(t)
	alice, bob, wrapper := newKey(t), newKey(t), newKey(t)
	toAlice := wrapper.sign(t, nostr.KindGiftWrap, now()-60, "sealed", nostr.Tag{"p", alice.pk})
	toBob := wrapper.sign(t, nostr.KindGiftWrap, now()-60, "sealed", nostr.Tag{"p", bob.pk})
	dial(t, tr.url).mustPublish(toAlice)
	dial(t, tr.url).mustPublish(toBob)

	c := dial(t, tr.url)
	challenge := c.challengeViaDMs()
	for _, k := range []key{alice, bob} {
		if res := c.authenticate(k, challenge, tr.url); !res.ok {
			t.Fatalf("AUTH: %+v", res)
		}
	}
	c.mustPublish(alice.sign(t, 1, now(), "alice, protected", nostr.Tag{"-"}))
	c.mustPublish(bob.sign(t, 1, now(), "bob, protected", nostr.Tag{"-"}))
	got := c.query("dms", nostr.Filter{Kinds: []int{nostr.KindGiftWrap}})
	if len(got) != 2 {
		t.Fatalf("gift wraps served: %v, want both alice's and bob's", ids(got))
	}
	// Live too.
	c.req("live", nostr.Filter{Kinds: []int{nostr.KindGiftWrap}, Limit: 1, Since: ptr(nostr.Timestamp(now()))})
	late := wrapper.sign(t, nostr.KindGiftWrap, now(), "sealed", nostr.Tag{"p", alice.pk})
	dial(t, tr.url).mustPublish(late)
	if ev := c.expectEvent("live"); ev.ID != late.ID {
		t.Fatalf("live %s, want %s", ev.ID, late.ID)
	}
}

// NIP-59: an ephemeral gift wrap (kind 21059) goes live to its recipient
// only, like a stored one, and is never stored.
func TestEphemeralGiftWrapOnlyForItsRecipient(t *testing.T) {
	tr := startRelay(t)
	bob, carol, wrapper := newKey(t), newKey(t), newKey(t)

	b := dial(t, tr.url)
	if res := b.authenticate(bob, b.challengeViaDMs(), tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	cc := dial(t, tr.url)
	if res := cc.authenticate(carol, cc.challengeViaDMs(), tr.url); !res.ok {
		t.Fatalf("AUTH: %+v", res)
	}
	anon := dial(t, tr.url)
	for _, c := range []*client{b, cc, anon} {
		c.req("live", nostr.Filter{})
	}
	anon.send("REQ", "wraps", nostr.Filter{Kinds: []int{21059}})
	anon.expectChallenge()
	if why := anon.expectClosed("wraps"); !strings.HasPrefix(why, "auth-required:") {
		t.Fatalf("unauthenticated REQ for ephemeral gift wraps: CLOSED %q, want auth-required:", why)
	}

	wrap := wrapper.sign(t, 21059, now(), "sealed", nostr.Tag{"p", bob.pk})
	note := wrapper.sign(t, 1, now(), "public")
	sender := dial(t, tr.url)
	sender.mustPublish(wrap)
	sender.mustPublish(note)
	if ev := b.expectEvent("live"); ev.ID != wrap.ID {
		t.Fatalf("bob got %s first, want the ephemeral gift wrap", ev.ID)
	}
	b.expectEvent("live") // the note
	for _, c := range []*client{cc, anon} {
		if ev := c.expectEvent("live"); ev.ID != note.ID {
			t.Fatalf("got %s, want only the public note", ev.ID)
		}
	}
	if got := b.query("later", nostr.Filter{Kinds: []int{21059}}); len(got) != 0 {
		t.Fatalf("ephemeral gift wrap was stored: %v", ids(got))
	}
}

// NIP-70: a repost (kinds 6 and 16) that embeds a protected event is
// refused, unless its author reposts their own event.
func TestRepostOfProtectedEvent(t *testing.T) {
	tr := startRelay(t)
	alice, bob := newKey(t), newKey(t)
	protected := alice.sign(t, 1, now(), "members only", nostr.Tag{"-"})
	open := alice.sign(t, 1, now(), "for everyone")
	embed := func(ev *nostr.Event) string { b, _ := json.Marshal(ev); return string(b) }

	c := dial(t, tr.url)
	for _, kind := range []int{6, 16} {
		wantRefused(t, c.publish(bob.sign(t, kind, now(), embed(protected), nostr.Tag{"e", protected.ID}, nostr.Tag{"p", alice.pk})), "blocked")
		// A repost without the embedded event, or of an open one, is fine.
		c.mustPublish(bob.sign(t, kind, now(), "", nostr.Tag{"e", protected.ID}, nostr.Tag{"p", alice.pk}))
		c.mustPublish(bob.sign(t, kind, now(), embed(open), nostr.Tag{"e", open.ID}, nostr.Tag{"p", alice.pk}))
		// Alice may repost her own protected event with it embedded.
		c.mustPublish(alice.sign(t, kind, now(), embed(protected), nostr.Tag{"e", protected.ID}))
	}
}
