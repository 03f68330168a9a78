package relay

import "github.com/wisp-relay/wisp/policy"

// The NIP-01 prefixes used at the wire, spelt once in package policy (which
// the relay's answers and the policies' reasons share). Every reason sent
// to a client is built with reason().
const (
	prefixInvalid      = policy.PrefixInvalid
	prefixDuplicate    = policy.PrefixDuplicate
	prefixBlocked      = policy.PrefixBlocked
	prefixRateLimited  = policy.PrefixRateLimited
	prefixRestricted   = policy.PrefixRestricted
	prefixAuthRequired = policy.PrefixAuthRequired
	prefixPoW          = policy.PrefixPoW
	prefixError        = policy.PrefixError
)

// reason joins a prefix and a human-readable message as NIP-01 asks.
func reason(prefix, msg string) string { return policy.Reason(prefix, msg) }

// internalError is what a client sees when something failed on our side; the
// details go to the log, not the wire.
const internalError = policy.InternalError
