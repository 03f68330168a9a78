package relay

// Machine-readable prefixes of NIP-01, used at the wire. Every reason sent to
// a client is built with reason() so the prefix is never misspelt.
const (
	prefixInvalid      = "invalid"
	prefixDuplicate    = "duplicate"
	prefixBlocked      = "blocked"
	prefixRateLimited  = "rate-limited"
	prefixRestricted   = "restricted"
	prefixAuthRequired = "auth-required"
	prefixPoW          = "pow"
	prefixError        = "error"
)

// reason joins a prefix and a human-readable message as NIP-01 asks.
func reason(prefix, msg string) string { return prefix + ": " + msg }

// internalError is what a client sees when something failed on our side; the
// details go to the log, not the wire.
const internalError = prefixError + ": internal error"
