//go:build libsecp256k1

package main

// verifier names the signature verifier go-nostr was built with: with the
// libsecp256k1 build tag, go-nostr compiles its bundled copy of the C library
// through cgo (about twice as fast as btcec).
const verifier = "libsecp256k1"
