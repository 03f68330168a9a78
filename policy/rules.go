package policy

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/wisp-relay/wisp"
)

// IPBlock refuses events from blocked IP addresses.
func IPBlock(l *Lists) Rule {
	return RuleFunc(func(_ context.Context, in *wisp.Input) wisp.Decision {
		if in.Source == wisp.SourceClient && l.IPBlocked(in.Remote) {
			return wisp.Rejected(wisp.PrefixBlocked, "your IP address is blocked")
		}
		return wisp.Accepted
	})
}

// RateLimit refuses events past a rate per key; key picks the key (the
// client's IP, the event's pubkey) and "" means not limited.
func RateLimit(r Rate, what string, key func(*wisp.Input) string) Rule {
	return rateLimit(newLimiter(r), what, key)
}

// rateLimit is RateLimit over a limiter of its own (nil: no rule).
func rateLimit(l *limiter, what string, key func(*wisp.Input) string) Rule {
	if l == nil {
		return nil
	}
	r := l.rate
	return RuleFunc(func(_ context.Context, in *wisp.Input) wisp.Decision {
		k := key(in)
		if k == "" {
			return wisp.Accepted
		}
		now := in.Received
		if now.IsZero() {
			now = time.Now()
		}
		if !l.allow(k, now) {
			return wisp.Rejected(wisp.PrefixRateLimited, fmt.Sprintf("slow down: at most %d events per %s per %s", r.N, r.Per, what))
		}
		return wisp.Accepted
	})
}

// ClientIP is the rate-limit key of client events: their IP address (for
// IPv6, its /64).
func ClientIP(in *wisp.Input) string {
	if in.Source != wisp.SourceClient || in.Remote == "" {
		return ""
	}
	return addrKey(in.Remote)
}

// EventPubkey is the rate-limit key by author, for client events.
func EventPubkey(in *wisp.Input) string {
	if in.Source != wisp.SourceClient {
		return ""
	}
	return in.Event.PubKey
}

// BannedEvents refuses event ids an admin banned.
func BannedEvents(l *Lists) Rule {
	return RuleFunc(func(_ context.Context, in *wisp.Input) wisp.Decision {
		if l.EventBanned(in.Event.ID) {
			return wisp.Rejected(wisp.PrefixBlocked, "this event is banned from this relay")
		}
		return wisp.Accepted
	})
}

// PubkeyDeny refuses events by a denied pubkey, and from a connection
// authenticated as one (among others).
func PubkeyDeny(l *Lists) Rule {
	return RuleFunc(func(_ context.Context, in *wisp.Input) wisp.Decision {
		if l.PubkeyBanned(in.Event.PubKey) || in.Authed.Any(l.PubkeyBanned) {
			return wisp.Rejected(wisp.PrefixBlocked, "pubkey is banned from this relay")
		}
		return wisp.Accepted
	})
}

// PubkeyAllow lets through events whose author is on the allow list, or
// which come from a connection authenticated as a pubkey on it (any of those
// it authenticated as): members may publish what others signed, such as a
// reposted note. With an empty list everyone passes. An event an admin
// allowed passes too.
func PubkeyAllow(l *Lists) Rule {
	return RuleFunc(func(_ context.Context, in *wisp.Input) wisp.Decision {
		if l.PubkeyAllowed(in.Event.PubKey) || in.Authed.Any(l.PubkeyAllowed) || l.EventAllowed(in.Event.ID) {
			return wisp.Accepted
		}
		if in.Source == wisp.SourceClient && len(in.Authed) == 0 {
			return wisp.Rejected(wisp.PrefixAuthRequired, "this relay accepts events only from its members; authenticate first")
		}
		return wisp.Rejected(wisp.PrefixRestricted, "this pubkey is not allowed to publish here")
	})
}

// KindFilter refuses kinds the allow and deny lists keep out.
func KindFilter(l *Lists) Rule {
	return RuleFunc(func(_ context.Context, in *wisp.Input) wisp.Decision {
		if !l.KindAllowed(in.Event.Kind) && !l.EventAllowed(in.Event.ID) {
			return wisp.Rejected(wisp.PrefixBlocked, "events of kind "+strconv.Itoa(in.Event.Kind)+" are not accepted here")
		}
		return wisp.Accepted
	})
}

// MinPoW asks for NIP-13 proof of work of at least bits: the id must have
// that many leading zero bits, and a nonce tag must commit to a target of
// at least that many (so that a spammer aiming lower cannot get lucky).
func MinPoW(bits int) Rule {
	if bits <= 0 {
		return nil
	}
	return RuleFunc(func(_ context.Context, in *wisp.Input) wisp.Decision {
		if in.Source != wisp.SourceClient {
			return wisp.Accepted
		}
		var target = -1
		for _, tag := range in.Event.Tags {
			if len(tag) >= 3 && tag[0] == "nonce" {
				if t, err := strconv.Atoi(tag[2]); err == nil {
					target = t
				}
				break
			}
		}
		if target < 0 {
			return wisp.Rejected(wisp.PrefixPoW, fmt.Sprintf("this relay needs proof of work of %d bits with a committed target (NIP-13 nonce tag)", bits))
		}
		if target < bits {
			return wisp.Rejected(wisp.PrefixPoW, fmt.Sprintf("committed target %d is below the required %d bits", target, bits))
		}
		if d := leadingZeroBits(in.Event.ID); d < bits {
			return wisp.Rejected(wisp.PrefixPoW, fmt.Sprintf("difficulty %d is below the required %d bits", d, bits))
		}
		return wisp.Accepted
	})
}

// leadingZeroBits counts the leading zero bits of a hex id (NIP-13).
func leadingZeroBits(id string) int {
	n := 0
	for i := 0; i < len(id); i++ {
		var v byte
		switch c := id[i]; {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			return n
		}
		if v == 0 {
			n += 4
			continue
		}
		for mask := byte(8); mask > 0 && v&mask == 0; mask >>= 1 {
			n++
		}
		return n
	}
	return n
}

// AuthForWrites asks client events to come from an authenticated
// connection.
func AuthForWrites() Rule {
	return RuleFunc(func(_ context.Context, in *wisp.Input) wisp.Decision {
		if in.Source == wisp.SourceClient && len(in.Authed) == 0 {
			return wisp.Rejected(wisp.PrefixAuthRequired, "this relay accepts events only after authentication (NIP-42)")
		}
		return wisp.Accepted
	})
}
