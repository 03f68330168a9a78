//go:build !cgo || purego || libsecp256k1

package secp256k1

// Available reports whether this build has the C verifier: not without
// cgo, under the purego tag, or under go-nostr's libsecp256k1 tag (whose
// own copy of the library is used then).
const Available = false
