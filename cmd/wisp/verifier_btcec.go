//go:build (!cgo || purego) && !libsecp256k1

package main

// verifier names the signature verifier of this build: the pure Go btcec,
// under the purego build tag or without cgo.
const verifier = "btcec"
