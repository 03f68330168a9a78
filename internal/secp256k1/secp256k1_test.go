//go:build cgo && !purego && !libsecp256k1

package secp256k1

import (
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
)

// The C verifier agrees with btcec's on valid signatures and on every
// kind of wrong one: another message, another key, a bit flipped in R or
// s, a key that is not on the curve.
func TestAgreesWithBtcec(t *testing.T) {
	v := New()
	for i := range 200 {
		sk, err := btcec.NewPrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		msg := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		s, err := schnorr.Sign(sk, msg[:])
		if err != nil {
			t.Fatal(err)
		}
		var sig [64]byte
		copy(sig[:], s.Serialize())
		var pk [32]byte
		copy(pk[:], schnorr.SerializePubKey(sk.PubKey()))

		check := func(what string, sig [64]byte, msg, pk [32]byte) {
			t.Helper()
			want := false
			if key, err := schnorr.ParsePubKey(pk[:]); err == nil {
				if s, err := schnorr.ParseSignature(sig[:]); err == nil {
					want = s.Verify(msg[:], key)
				}
			}
			if got := v.Verify(&sig, &msg, &pk); got != want {
				t.Fatalf("%s (round %d): C says %v, btcec %v", what, i, got, want)
			}
		}
		check("valid", sig, msg, pk)
		if !v.Verify(&sig, &msg, &pk) {
			t.Fatal("a valid signature refused")
		}
		other := msg
		other[i%32] ^= 1
		check("other message", sig, other, pk)
		bad := sig
		bad[i%64] ^= 0x80
		check("bit flipped", bad, msg, pk)
		var junk [32]byte
		rand.Read(junk[:])
		check("random key", sig, msg, junk)
		var ff [32]byte
		for j := range ff {
			ff[j] = 0xff // past the field prime: not a key
		}
		check("key off the field", sig, msg, ff)
	}
}

func BenchmarkVerify(b *testing.B) {
	v := New()
	sk, _ := btcec.NewPrivateKey()
	msg := sha256.Sum256([]byte("wisp"))
	s, _ := schnorr.Sign(sk, msg[:])
	var sig [64]byte
	copy(sig[:], s.Serialize())
	var pk [32]byte
	copy(pk[:], schnorr.SerializePubKey(sk.PubKey()))
	for b.Loop() {
		if !v.Verify(&sig, &msg, &pk) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkVerifyBtcec(b *testing.B) {
	sk, _ := btcec.NewPrivateKey()
	msg := sha256.Sum256([]byte("wisp"))
	s, _ := schnorr.Sign(sk, msg[:])
	pk := schnorr.SerializePubKey(sk.PubKey())
	for b.Loop() {
		key, _ := schnorr.ParsePubKey(pk)
		if !s.Verify(msg[:], key) {
			b.Fatal("refused")
		}
	}
}
