package relay

import (
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

// The pipeline's checker must agree with go-nostr's CheckSignature on every
// event whose id is right (it only runs after checkID), whatever it keeps.
func TestSigCheckerAgreesWithCheckSignature(t *testing.T) {
	var s sigChecker
	sk := nostr.GeneratePrivateKey()
	var evs []nostr.Event
	for i := range 4 {
		ev := nostr.Event{CreatedAt: nostr.Now(), Kind: 1, Content: strings.Repeat("x", i)}
		if err := ev.Sign(sk); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev, *signedEvent(t, nil))
	}
	other := signedEvent(t, nil)
	flip := func(s string) string { // one hex digit changed
		b := []byte(s)
		b[10] ^= 1
		return string(b)
	}
	for round := range 2 { // the second round finds the keys kept
		for i, ev := range evs {
			if !s.verifyChecked(&ev) {
				t.Fatalf("round %d: event %d: valid signature refused", round, i)
			}
			bad := map[string]nostr.Event{}
			e := ev
			e.Sig = flip(ev.Sig)
			bad["flipped signature"] = e
			e = ev
			e.Sig = other.Sig
			bad["another event's signature"] = e
			e = ev
			e.PubKey = other.PubKey
			bad["another author"] = e
			e = ev
			e.PubKey = strings.Repeat("f", 64)
			bad["pubkey not on the curve"] = e
			e = ev
			e.Sig = "zz" + ev.Sig[2:]
			bad["signature not hex"] = e
			e = ev
			e.PubKey = ev.PubKey[:62]
			bad["short pubkey"] = e
			for name, b := range bad {
				if s.verifyChecked(&b) {
					t.Errorf("round %d: event %d: %s passes", round, i, name)
				}
				if ok, _ := b.CheckSignature(); ok {
					t.Errorf("round %d: event %d: %s passes go-nostr too", round, i, name)
				}
			}
		}
	}
}

func BenchmarkSigChecker(b *testing.B) {
	ev := signedEvent(b, nil)
	var s sigChecker
	b.ReportAllocs()
	for b.Loop() {
		if !s.verifyChecked(ev) {
			b.Fatal("bad signature")
		}
	}
}

// BenchmarkSigCheckerParallel checks on every core at once: 1/(ns/op) is
// the machine's signature-check bound on ingest.
func BenchmarkSigCheckerParallel(b *testing.B) {
	evs := make([]*nostr.Event, 64)
	for i := range evs {
		evs[i] = signedEvent(b, nil)
	}
	var s sigChecker
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if !s.verifyChecked(evs[i%len(evs)]) {
				b.Error("bad signature")
				return
			}
			i++
		}
	})
}
