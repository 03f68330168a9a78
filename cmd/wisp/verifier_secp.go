//go:build cgo && !purego && !libsecp256k1

package main

// verifier names the signature verifier of this build: by default
// libsecp256k1, compiled by cgo from internal/secp256k1 (about five times
// as fast as btcec); the purego build tag, or CGO_ENABLED=0, selects btcec.
const verifier = "libsecp256k1"
