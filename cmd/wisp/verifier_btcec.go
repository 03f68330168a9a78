//go:build !libsecp256k1

package main

// verifier names the signature verifier go-nostr was built with: the pure Go
// btcec by default.
const verifier = "btcec"
