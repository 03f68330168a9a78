package wisp

import "strings"

// Machine-readable prefixes of NIP-01 and NIP-42, spelt once: every answer
// the relay gives and every reason a rule returns is built from them.
const (
	PrefixDuplicate    = "duplicate"
	PrefixBlocked      = "blocked"
	PrefixRateLimited  = "rate-limited"
	PrefixRestricted   = "restricted"
	PrefixAuthRequired = "auth-required"
	PrefixPoW          = "pow"
	PrefixInvalid      = "invalid"
	PrefixError        = "error"
)

// Reason joins a prefix and a message as NIP-01 asks: "prefix: message".
func Reason(prefix, msg string) string { return prefix + ": " + msg }

// InternalError is what a client sees when something failed on the relay's
// side; the details go to the log, not the wire.
const InternalError = PrefixError + ": internal error"

// HasPrefix reports whether a reason starts with a machine-readable prefix
// (lowercase letters and dashes, then ": ").
func HasPrefix(reason string) bool {
	p, _, ok := strings.Cut(reason, ": ")
	if !ok || p == "" {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

// IsReason reports whether reason has the given prefix.
func IsReason(reason, prefix string) bool { return strings.HasPrefix(reason, prefix+":") }
