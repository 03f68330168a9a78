// Package wisp holds the words the relay and its policies both speak: the
// NIP-01 reason prefixes, where an event comes from and what a rule sees
// (Input, ReadInput), what a rule decides (Decision), what AUTH is needed
// for, what NIP-11 and NIP-86 carry between them, and how a state keeper
// (NIP-29 groups) stages a write batch (KeeperBatch). It imports nothing of
// wisp's; package relay (the protocol) and package policy (the rules) import
// it and not each other, and cmd/wisp wires them together.
package wisp
