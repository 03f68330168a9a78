package relay

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

const (
	// authWindow is how far an AUTH event's created_at may be from now (NIP-42).
	authWindow = 10 * time.Minute
	kindVanish = 62
	// allRelays in a kind 62 relay tag addresses every relay (NIP-62).
	allRelays = "ALL_RELAYS"
	// maxAuthAttempts bounds the AUTH messages of one connection: each
	// costs a signature check on the reader, outside any rate limit.
	maxAuthAttempts = 20
)

// connAuth is a connection's NIP-42 state. The challenge is fixed for the
// connection's life; it is sent at connect when the policy needs AUTH for
// something, else the first time the relay answers auth-required.
type connAuth struct {
	c         *conn
	challenge string
	sent      atomic.Bool
	authed    atomic.Pointer[wisp.Pubkeys] // replaced, never changed in place
	attempts  int                          // handler goroutine only
}

func (a *connAuth) init(c *conn) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	a.c = c
	a.challenge = hex.EncodeToString(b[:])
	if c.r.cfg.Policy != nil && c.r.cfg.Policy.AuthMode() != wisp.AuthOpen {
		c.sendChallenge()
	}
}

// pubkeys are the pubkeys the connection authenticated as (NIP-42: a client
// may authenticate as several, and the relay must treat each as
// authenticated); none before AUTH. Safe from any goroutine; the caller must
// not change the slice.
func (a *connAuth) pubkeys() wisp.Pubkeys {
	if p := a.authed.Load(); p != nil {
		return *p
	}
	return nil
}

// add records one more authenticated pubkey. Handler goroutine only; at
// most maxAuthAttempts pubkeys, as AUTH messages are bounded.
func (a *connAuth) add(pk string) {
	old := a.pubkeys()
	if old.Has(pk) {
		return
	}
	next := append(make(wisp.Pubkeys, 0, len(old)+1), old...)
	next = append(next, pk)
	a.authed.Store(&next)
}

// sendChallenge sends ["AUTH", challenge] once per connection. It never
// blocks, so the verify workers may call it.
func (c *conn) sendChallenge() {
	if c.auth.sent.Swap(true) {
		return
	}
	b, _ := json.Marshal([]string{"AUTH", c.auth.challenge})
	c.sendNoWait(frame{body: b})
}

// handleAuth checks a client's AUTH event (NIP-42) and answers it with OK.
// The event is never stored or broadcast.
func (c *conn) handleAuth(ev *nostr.Event) {
	fail := func(msg string) { c.ok(ev.ID, false, wisp.Reason(wisp.PrefixInvalid, msg)) }
	if c.auth.attempts++; c.auth.attempts > maxAuthAttempts {
		c.ok(ev.ID, false, wisp.Reason(wisp.PrefixRateLimited, "too many AUTH messages on this connection"))
		return
	}
	if ev.Kind != nostr.KindClientAuthentication {
		fail("an auth event has kind 22242")
		return
	}
	if !checkID(ev) {
		fail("event id does not match its content")
		return
	}
	if d := time.Since(ev.CreatedAt.Time()); d > authWindow || d < -authWindow {
		fail("auth event created_at is more than ten minutes from now")
		return
	}
	if ev.Tags.FindWithValue("challenge", c.auth.challenge) == nil {
		fail("auth event does not carry this connection's challenge")
		return
	}
	named := false
	for _, tag := range ev.Tags {
		if len(tag) >= 2 && tag[0] == "relay" && c.r.id.isThisRelay(tag[1]) {
			named = true
			break
		}
	}
	if !named {
		fail("auth event names another relay")
		return
	}
	if !verifySig(ev) {
		fail("bad signature")
		return
	}
	c.auth.add(ev.PubKey)
	c.r.log.Debug("client authenticated", "remote", c.remote, "pubkey", ev.PubKey)
	c.ok(ev.ID, true, "")
}

// kindEphemeralGiftWrap is NIP-59's ephemeral gift wrap: never stored (it is
// in the ephemeral range), delivered live to its recipient only.
const kindEphemeralGiftWrap = 21059

// Private messages (NIP-17 and NIP-59 gift wraps, NIP-04 direct messages)
// are served only to an authenticated recipient (p-tagged) or, for kind 4,
// the author.
func isPrivateKind(kind int) bool {
	return kind == nostr.KindGiftWrap || kind == kindEphemeralGiftWrap || kind == nostr.KindEncryptedDirectMessage
}

// maySee reports whether the connection may receive ev.
func (c *conn) maySee(ev *nostr.Event) bool {
	if !isPrivateKind(ev.Kind) {
		return true
	}
	return visibleTo(ev.Kind, ev.PubKey, ev.Tags, c.auth.pubkeys())
}

// visibleTo reports whether a private message reaches one of viewers: a
// p-tagged recipient or, for kind 4, its author.
func visibleTo(kind int, author string, tags nostr.Tags, viewers wisp.Pubkeys) bool {
	if len(viewers) == 0 {
		return false
	}
	if kind == nostr.KindEncryptedDirectMessage && viewers.Has(author) {
		return true
	}
	for _, tag := range tags {
		if len(tag) >= 2 && tag[0] == "p" && viewers.Has(tag[1]) {
			return true
		}
	}
	return false
}

// maySeeRaw is maySee for a stored event's canonical JSON. The kind is read
// straight from the bytes (wisp stores id, pubkey, created_at, kind first,
// in that order), so only private messages are decoded.
func (c *conn) maySeeRaw(raw []byte) bool {
	kind, ok := rawKind(raw)
	if ok && !isPrivateKind(kind) {
		return true
	}
	var ev struct {
		Kind   int        `json:"kind"`
		PubKey string     `json:"pubkey"`
		Tags   nostr.Tags `json:"tags"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		return false
	}
	if !isPrivateKind(ev.Kind) {
		return true
	}
	return visibleTo(ev.Kind, ev.PubKey, ev.Tags, c.auth.pubkeys())
}

var kindKey = []byte(`,"kind":`)

// rawKind finds the kind in canonical event JSON. The first `,"kind":` is
// the field: id, pubkey and created_at before it cannot contain it.
func rawKind(raw []byte) (int, bool) {
	i := bytes.Index(raw, kindKey)
	if i < 0 {
		return 0, false
	}
	rest := raw[i+len(kindKey):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || n > 6 {
		return 0, false
	}
	k, err := strconv.Atoi(string(rest[:n]))
	return k, err == nil
}

// mayMatchPrivate reports whether a filter could match private messages:
// it names kind 4 or 1059, or no kinds at all.
func mayMatchPrivate(filters []nostr.Filter) bool {
	for i := range filters {
		f := &filters[i]
		if f.Kinds == nil {
			return true
		}
		for _, k := range f.Kinds {
			if isPrivateKind(k) {
				return true
			}
		}
	}
	return false
}

// onlyPrivateKinds reports whether every filter asks only for private
// messages, so that an unauthenticated client can get nothing from it.
func onlyPrivateKinds(filters []nostr.Filter) bool {
	if len(filters) == 0 {
		return false
	}
	for i := range filters {
		f := &filters[i]
		if len(f.Kinds) == 0 {
			return false
		}
		for _, k := range f.Kinds {
			if !isPrivateKind(k) {
				return false
			}
		}
	}
	return true
}
