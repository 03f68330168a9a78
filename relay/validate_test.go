package relay

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// signedEvent returns an event signed by a fresh key, after mod has changed
// it (before signing).
func signedEvent(t testing.TB, mod func(*nostr.Event)) *nostr.Event {
	t.Helper()
	ev := &nostr.Event{
		CreatedAt: nostr.Now(),
		Kind:      1,
		Tags:      nostr.Tags{{"t", "wisp"}},
		Content:   "hello from wisp",
	}
	if mod != nil {
		mod(ev)
	}
	if err := ev.Sign(nostr.GeneratePrivateKey()); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestCheckEvent(t *testing.T) {
	now := time.Now()
	unix := now.Unix()
	ts := func(sec int64) nostr.Timestamp { return nostr.Timestamp(sec) }
	exp := func(sec int64) nostr.Tag { return nostr.Tag{"expiration", strconv.FormatInt(sec, 10)} }
	cases := []struct {
		name string
		mod  func(*nostr.Event)
		lim  func(*Limits)
		want string
	}{
		{"ok", nil, nil, ""},
		{"auth kind left to the caller", func(e *nostr.Event) { e.Kind = 22242 }, nil, ""},
		{"too large", func(e *nostr.Event) { e.Content = strings.Repeat("x", 1000) }, func(l *Limits) { l.MaxEventBytes = 1000 }, "invalid: event too large"},
		{"too many tags", func(e *nostr.Event) {
			for range 5 {
				e.Tags = append(e.Tags, nostr.Tag{"t", "x"})
			}
		}, func(l *Limits) { l.MaxEventTags = 5 }, "invalid: too many tags"},
		{"tags at limit", func(e *nostr.Event) { e.Tags = append(e.Tags, nostr.Tag{"t", "x"}) }, func(l *Limits) { l.MaxEventTags = 2 }, ""},
		{"tag element too long", func(e *nostr.Event) { e.Tags = append(e.Tags, nostr.Tag{"t", strings.Repeat("x", 101)}) }, func(l *Limits) { l.MaxTagValueBytes = 100 }, "invalid: tag element too long"},
		{"content too long", func(e *nostr.Event) { e.Content = strings.Repeat("é", 101) }, func(l *Limits) { l.MaxContentLength = 100 }, "invalid: content too long"},
		{"content counted in characters", func(e *nostr.Event) { e.Content = strings.Repeat("é", 100) }, func(l *Limits) { l.MaxContentLength = 100 }, ""},
		{"future", func(e *nostr.Event) { e.CreatedAt = ts(unix + 16*60) }, nil, "invalid: created_at too far in the future"},
		{"near future", func(e *nostr.Event) { e.CreatedAt = ts(unix + 14*60) }, nil, ""},
		{"old, no past bound", func(e *nostr.Event) { e.CreatedAt = ts(1) }, nil, ""},
		{"too old", func(e *nostr.Event) { e.CreatedAt = ts(unix - 3601) }, func(l *Limits) { l.CreatedAtPast = time.Hour }, "invalid: created_at too far in the past"},
		{"old within bound", func(e *nostr.Event) { e.CreatedAt = ts(unix - 3500) }, func(l *Limits) { l.CreatedAtPast = time.Hour }, ""},
		{"expired", func(e *nostr.Event) { e.Tags = append(e.Tags, exp(unix-1)) }, nil, "invalid: event has expired"},
		{"expires now", func(e *nostr.Event) { e.Tags = append(e.Tags, exp(unix)) }, nil, "invalid: event has expired"},
		{"expires later", func(e *nostr.Event) { e.Tags = append(e.Tags, exp(unix+60)) }, nil, ""},
		{"earliest expiration wins", func(e *nostr.Event) { e.Tags = append(e.Tags, exp(unix+60), exp(unix-60)) }, nil, "invalid: event has expired"},
		{"expiration no value", func(e *nostr.Event) { e.Tags = append(e.Tags, nostr.Tag{"expiration"}) }, nil, "invalid: malformed expiration tag"},
		{"expiration not a number", func(e *nostr.Event) { e.Tags = append(e.Tags, nostr.Tag{"expiration", "soon"}) }, nil, "invalid: malformed expiration tag"},
		{"expiration signed", func(e *nostr.Event) { e.Tags = append(e.Tags, nostr.Tag{"expiration", "+99999999999"}) }, nil, "invalid: malformed expiration tag"},
		{"expiration float", func(e *nostr.Event) { e.Tags = append(e.Tags, nostr.Tag{"expiration", "99999999999.5"}) }, nil, "invalid: malformed expiration tag"},
		{"expiration overflow", func(e *nostr.Event) { e.Tags = append(e.Tags, nostr.Tag{"expiration", strings.Repeat("9", 30)}) }, nil, "invalid: malformed expiration tag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lim := DefaultLimits()
			if tc.lim != nil {
				tc.lim(&lim)
			}
			ev := signedEvent(t, tc.mod)
			if got := checkEvent(ev, canonicalEvent(ev), &lim, now); got != tc.want {
				t.Fatalf("checkEvent = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCheckIDAndSig(t *testing.T) {
	ev := signedEvent(t, nil)
	if !checkID(ev) || !verifySig(ev) {
		t.Fatal("a freshly signed event fails")
	}
	// It survives the wire: parse its canonical form and check again.
	msg, perr := parseClientMsg(append(append([]byte(`["EVENT",`), canonicalEvent(ev)...), ']'), nil)
	if perr != nil || !checkID(msg.event) || !verifySig(msg.event) {
		t.Fatalf("after a round trip: %v", perr)
	}

	flip := func(s string) string {
		b := []byte(s)
		if b[10] == '0' {
			b[10] = '1'
		} else {
			b[10] = '0'
		}
		return string(b)
	}
	tamperedID := *ev
	tamperedID.ID = flip(ev.ID)
	if checkID(&tamperedID) {
		t.Error("tampered id passes checkID")
	}

	tamperedContent := *ev
	tamperedContent.Content += "!"
	if checkID(&tamperedContent) || verifySig(&tamperedContent) {
		t.Error("tampered content passes")
	}

	tamperedSig := *ev
	tamperedSig.Sig = flip(ev.Sig)
	if !checkID(&tamperedSig) || verifySig(&tamperedSig) {
		t.Error("tampered sig: id must pass, signature must fail")
	}

	otherKey := *ev
	otherKey.Sig = signedEvent(t, nil).Sig
	if verifySig(&otherKey) {
		t.Error("another event's signature passes")
	}

	otherAuthor := *ev
	otherAuthor.PubKey = signedEvent(t, nil).PubKey
	if verifySig(&otherAuthor) {
		t.Error("signature passes for another pubkey")
	}

	badPub := *ev
	badPub.PubKey = strings.Repeat("f", 64) // not on the curve
	if verifySig(&badPub) {
		t.Error("invalid pubkey passes")
	}
}

func BenchmarkVerifySig(b *testing.B) {
	ev := signedEvent(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		if !verifySig(ev) {
			b.Fatal("bad signature")
		}
	}
}

func BenchmarkCheckID(b *testing.B) {
	ev := signedEvent(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		if !checkID(ev) {
			b.Fatal("bad id")
		}
	}
}

func BenchmarkCheckEvent(b *testing.B) {
	ev := signedEvent(b, func(e *nostr.Event) { e.Tags = append(e.Tags, nostr.Tag{"expiration", "99999999999"}) })
	raw := canonicalEvent(ev)
	lim := DefaultLimits()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if why := checkEvent(ev, raw, &lim, now); why != "" {
			b.Fatal(why)
		}
	}
}
