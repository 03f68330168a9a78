//go:build cgo && !purego && !libsecp256k1

// Package secp256k1 verifies BIP-340 schnorr signatures with
// bitcoin-core's libsecp256k1, compiled from the C sources in c/ by cgo
// with the C compiler the SQLite driver already needs. It is the default
// verifier of wisp; the purego build tag (or CGO_ENABLED=0) leaves it
// out, and the libsecp256k1 tag makes go-nostr compile its own copy, which
// this one would collide with at link time.
package secp256k1

/*
#cgo CFLAGS: -I${SRCDIR}/c/include -I${SRCDIR}/c/src
#cgo CFLAGS: -DECMULT_GEN_PREC_BITS=4 -DECMULT_WINDOW_SIZE=15
#cgo CFLAGS: -DENABLE_MODULE_SCHNORRSIG=1 -DENABLE_MODULE_EXTRAKEYS=1

#include "./c/src/secp256k1.c"
#include "./c/src/precomputed_ecmult.c"
#include "./c/src/precomputed_ecmult_gen.c"
#include "./c/src/modules/extrakeys/main_impl.h"
#include "./c/src/modules/schnorrsig/main_impl.h"

#include "./c/include/secp256k1.h"
#include "./c/include/secp256k1_extrakeys.h"
#include "./c/include/secp256k1_schnorrsig.h"

// verify parses the x-only key and checks sig over a 32-byte message in
// one call, so that a verification costs one cgo crossing.
static int wisp_verify(const secp256k1_context *ctx, const unsigned char *sig,
                       const unsigned char *msg, const unsigned char *pk) {
	secp256k1_xonly_pubkey key;
	if (!secp256k1_xonly_pubkey_parse(ctx, &key, pk)) return 0;
	return secp256k1_schnorrsig_verify(ctx, sig, msg, 32, &key);
}
*/
import "C"

import "unsafe"

// Available reports whether this build has the C verifier.
const Available = true

// Verifier checks signatures; its context is read-only once made, so one
// Verifier serves any number of goroutines.
type Verifier struct {
	ctx *C.secp256k1_context
}

// New makes a Verifier. Its context lives as long as the process: one per
// relay, never freed.
func New() *Verifier {
	return &Verifier{ctx: C.secp256k1_context_create(C.SECP256K1_CONTEXT_NONE)}
}

// Verify reports whether sig is pubkey's valid BIP-340 signature of msg.
func (v *Verifier) Verify(sig *[64]byte, msg *[32]byte, pubkey *[32]byte) bool {
	return C.wisp_verify(v.ctx,
		(*C.uchar)(unsafe.Pointer(&sig[0])),
		(*C.uchar)(unsafe.Pointer(&msg[0])),
		(*C.uchar)(unsafe.Pointer(&pubkey[0]))) == 1
}
