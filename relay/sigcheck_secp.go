//go:build cgo && !purego && !libsecp256k1

package relay

import (
	"sync"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/internal/secp256k1"
)

// sigChecker verifies event signatures for the pipeline with
// libsecp256k1 (internal/secp256k1, the default build): over the event id,
// which admission has already proved is the event's hash, in one cgo call
// that parses the key and verifies. Parsing a key in C is cheap, so
// nothing is kept.
type sigChecker struct {
	once sync.Once
	v    *secp256k1.Verifier
}

// verifyChecked reports whether ev's signature is valid; ev.ID must have
// passed checkID.
func (s *sigChecker) verifyChecked(ev *nostr.Event) bool {
	id, pk, sig, ok := sigParts(ev)
	if !ok {
		return false
	}
	s.once.Do(func() { s.v = secp256k1.New() })
	return s.v.Verify(&sig, &id, &pk)
}
