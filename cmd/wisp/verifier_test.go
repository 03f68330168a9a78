package main

import (
	"reflect"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/internal/secp256k1"
)

// The verifier a build names (wisp --version, NIP-11's version, the
// metrics) is the one compiled: wisp's libsecp256k1 by default, go-nostr's
// under its libsecp256k1 tag (go-nostr's Sign takes signing options only
// in that build, so its type tells which file was compiled), btcec under
// purego. CI runs this in all three builds.
func TestVerifierIsTheOneCompiled(t *testing.T) {
	compiled := "btcec"
	if secp256k1.Available || reflect.TypeOf((*nostr.Event).Sign).IsVariadic() {
		compiled = "libsecp256k1"
	}
	if verifier != compiled {
		t.Fatalf("the build names the verifier %q, the build compiled %q", verifier, compiled)
	}
}
