//go:build (!cgo || purego) && !libsecp256k1

package relay

import (
	"sync"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/nbd-wtf/go-nostr"
)

// maxCachedKeys bounds sigChecker's cache (about 150 bytes an entry).
const maxCachedKeys = 16384

// sigChecker verifies event signatures for the pipeline with btcec, doing
// less than go-nostr's CheckSignature: it verifies over the event id, which
// admission has already proved is the event's hash (CheckSignature would
// serialize and hash the event again), and it keeps the parsed keys of
// recent authors, since parsing lifts x to a curve point (a square root)
// and a busy relay sees the same authors again and again.
type sigChecker struct {
	mu   sync.Mutex
	keys map[[32]byte]*btcec.PublicKey
}

// verifyChecked reports whether ev's signature is valid; ev.ID must have
// passed checkID.
func (s *sigChecker) verifyChecked(ev *nostr.Event) bool {
	id, pk, sb, ok := sigParts(ev)
	if !ok {
		return false
	}
	sig, err := schnorr.ParseSignature(sb[:])
	if err != nil {
		return false
	}
	key := s.key(pk)
	return key != nil && sig.Verify(id[:], key)
}

// key returns the parsed public key, or nil if pk is not one.
func (s *sigChecker) key(pk [32]byte) *btcec.PublicKey {
	s.mu.Lock()
	key := s.keys[pk]
	s.mu.Unlock()
	if key != nil {
		return key
	}
	key, err := schnorr.ParsePubKey(pk[:])
	if err != nil {
		return nil
	}
	s.mu.Lock()
	if s.keys == nil || len(s.keys) >= maxCachedKeys {
		s.keys = make(map[[32]byte]*btcec.PublicKey) // start over: simple, and bounded
	}
	s.keys[pk] = key
	s.mu.Unlock()
	return key
}
