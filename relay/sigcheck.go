package relay

import (
	"encoding/hex"

	"github.com/nbd-wtf/go-nostr"
)

// sigParts decodes what a schnorr check reads of ev: the id (the message,
// which checkID has proved is the event's hash), the x-only key and the
// signature; ok is false when one is not hex of its length.
func sigParts(ev *nostr.Event) (id, pk [32]byte, sig [64]byte, ok bool) {
	if len(ev.ID) != 64 || len(ev.PubKey) != 64 || len(ev.Sig) != 128 {
		return id, pk, sig, false
	}
	if _, err := hex.Decode(id[:], []byte(ev.ID)); err != nil {
		return id, pk, sig, false
	}
	if _, err := hex.Decode(pk[:], []byte(ev.PubKey)); err != nil {
		return id, pk, sig, false
	}
	if _, err := hex.Decode(sig[:], []byte(ev.Sig)); err != nil {
		return id, pk, sig, false
	}
	return id, pk, sig, true
}
