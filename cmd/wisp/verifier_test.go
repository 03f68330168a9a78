package main

import (
	"reflect"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

// The verifier a build names (wisp --version, NIP-11's version, the
// metrics) is the one go-nostr compiled: the build tag that picks
// go-nostr's C verifier must be the one that names it. go-nostr's Sign
// takes signing options only in its libsecp256k1 build, so its type
// tells which file was compiled. CI runs this in both builds.
func TestVerifierIsTheOneCompiled(t *testing.T) {
	compiled := "btcec"
	if reflect.TypeOf((*nostr.Event).Sign).IsVariadic() {
		compiled = "libsecp256k1"
	}
	if verifier != compiled {
		t.Fatalf("the build names the verifier %q, go-nostr was compiled with %q", verifier, compiled)
	}
}
