// Package policy decides who may connect, read and write: small rules
// composed in chains, the built-in rules configured by WISP_ variables,
// strfry-compatible write-policy plugins, and the NIP-86 management methods
// that change the moderation lists at run time.
//
// A rule sees an Input (the event, where it came from, who sent it, when)
// and returns a Decision: accept, reject with a NIP-01 prefixed reason, or
// shadow-reject (the sender is told OK, nothing is stored). Chains run their
// rules in order, cheapest first, and stop at the first rule that does not
// accept. They fail closed: a rule that panics rejects the event with
// "error: internal error".
//
// policy never imports the relay; the relay calls a *Policy through the
// small interface it declares.
package policy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// Machine-readable prefixes of NIP-01 and NIP-42. The relay builds its own
// answers from these too, so each prefix is spelt in one place.
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

// InternalError is what a client sees when a rule failed on our side; the
// details go to the log.
const InternalError = PrefixError + ": internal error"

// Source says where an event comes from.
type Source uint8

const (
	// SourceClient: a client's EVENT over a websocket.
	SourceClient Source = iota
	// SourceImport: `wisp import` or another local bulk load.
	SourceImport
	// SourceStream: a live feed from another relay (strfry's "Stream").
	SourceStream
	// SourceSync: mirroring or negentropy sync with another relay.
	SourceSync
)

func (s Source) String() string {
	switch s {
	case SourceClient:
		return "client"
	case SourceImport:
		return "import"
	case SourceStream:
		return "stream"
	case SourceSync:
		return "sync"
	}
	return "unknown"
}

// Input is what a write rule sees.
type Input struct {
	Event *nostr.Event
	// Raw is the event's canonical JSON, when the caller has it (plugins
	// get it verbatim; nil means they get json.Marshal(Event)).
	Raw    []byte
	Source Source
	// Remote is the client's IP address for SourceClient, the other relay's
	// URL for SourceStream and SourceSync, and empty for SourceImport.
	Remote string
	// Authed is the pubkey the connection authenticated as (NIP-42), or "".
	Authed string
	// Received is when the relay received the event.
	Received time.Time
	// Vanish marks a NIP-62 request to vanish that names this relay. Such
	// requests must be honoured whoever sends them, so only the rules that
	// protect the relay itself (blocked IPs, rate limits) judge them.
	Vanish bool
}

// ReadInput is what a read rule sees: one REQ (or COUNT).
type ReadInput struct {
	Remote  string
	Authed  string
	Filters []nostr.Filter
	Time    time.Time
}

// Action is what a rule decided.
type Action uint8

const (
	// Accept lets the event (or the read) through to the next rule.
	Accept Action = iota
	// Reject refuses it with Decision.Reason.
	Reject
	// ShadowReject answers the sender as if the event were stored, but
	// stores and broadcasts nothing.
	ShadowReject
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case ShadowReject:
		return "shadowReject"
	}
	return "unknown"
}

// Decision is a rule's answer. Reason carries a NIP-01 prefix when Action
// is Reject.
type Decision struct {
	Action Action
	Reason string
}

// Accepted is the decision of a rule with nothing against the input.
var Accepted = Decision{}

// Rejected returns a Reject decision with a prefixed reason.
func Rejected(prefix, msg string) Decision {
	return Decision{Action: Reject, Reason: Reason(prefix, msg)}
}

// Rule judges one event.
type Rule interface {
	Check(ctx context.Context, in *Input) Decision
}

// RuleFunc adapts a function to Rule.
type RuleFunc func(ctx context.Context, in *Input) Decision

// Check calls f.
func (f RuleFunc) Check(ctx context.Context, in *Input) Decision { return f(ctx, in) }

// ReadRule judges one REQ.
type ReadRule interface {
	CheckRead(in *ReadInput) Decision
}

// Chain runs rules in order and returns the first decision that is not
// Accept. It fails closed: a rule that panics rejects the event.
type Chain struct {
	rules []namedRule
	log   *slog.Logger
}

type namedRule struct {
	name string
	rule Rule
	// vanish: the rule also judges NIP-62 requests to vanish.
	vanish bool
}

// Add appends a rule under a name used in logs. A nil rule is skipped.
func (c *Chain) Add(name string, r Rule) *Chain {
	if r != nil {
		c.rules = append(c.rules, namedRule{name: name, rule: r})
	}
	return c
}

// addGuard appends a rule that also judges requests to vanish.
func (c *Chain) addGuard(name string, r Rule) *Chain {
	if r != nil {
		c.rules = append(c.rules, namedRule{name: name, rule: r, vanish: true})
	}
	return c
}

// Len is the number of rules in the chain.
func (c *Chain) Len() int { return len(c.rules) }

// Check runs the chain.
func (c *Chain) Check(ctx context.Context, in *Input) (d Decision) {
	for _, nr := range c.rules {
		if in.Vanish && !nr.vanish {
			continue
		}
		d = c.run(ctx, nr, in)
		if d.Action != Accept {
			return d
		}
	}
	return Accepted
}

func (c *Chain) run(ctx context.Context, nr namedRule, in *Input) (d Decision) {
	defer func() {
		if p := recover(); p != nil {
			if c.log != nil {
				c.log.Error("policy rule panicked", "rule", nr.name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			d = Decision{Action: Reject, Reason: InternalError}
		}
	}()
	d = nr.rule.Check(ctx, in)
	if d.Action == Reject && !hasPrefix(d.Reason) {
		// A rule must say why with a prefix; a bare message would break
		// clients that parse it.
		d.Reason = Reason(PrefixBlocked, strings.TrimSpace(d.Reason))
	}
	return d
}

// hasPrefix reports whether a reason starts with a NIP-01 prefix.
func hasPrefix(reason string) bool {
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

// ipFamily returns "IP4" or "IP6" for an address, as strfry names them.
func ipFamily(addr string) string {
	ip := net.ParseIP(addr)
	if ip != nil && ip.To4() == nil {
		return "IP6"
	}
	return "IP4"
}

// addrKey is the key of per-address limits: the IP address, or for IPv6
// its /64 network, since one subscriber usually holds a whole /64 and could
// otherwise take a fresh address for every request.
func addrKey(addr string) string {
	ip := net.ParseIP(addr)
	if ip == nil || ip.To4() != nil {
		return addr
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
