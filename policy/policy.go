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

	"github.com/wisp-relay/wisp"
)

// Rule judges one event.
type Rule interface {
	Check(ctx context.Context, in *wisp.Input) wisp.Decision
}

// RuleFunc adapts a function to Rule.
type RuleFunc func(ctx context.Context, in *wisp.Input) wisp.Decision

// Check calls f.
func (f RuleFunc) Check(ctx context.Context, in *wisp.Input) wisp.Decision { return f(ctx, in) }

// ReadRule judges one REQ.
type ReadRule interface {
	CheckRead(in *wisp.ReadInput) wisp.Decision
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
	// guard: the rule also judges NIP-62 requests to vanish and NIP-43
	// membership requests, which only such rules judge.
	guard bool
}

// Add appends a rule under a name used in logs. A nil rule is skipped.
func (c *Chain) Add(name string, r Rule) *Chain {
	if r != nil {
		c.rules = append(c.rules, namedRule{name: name, rule: r})
	}
	return c
}

// addGuard appends a rule that also judges requests to vanish and
// membership requests.
func (c *Chain) addGuard(name string, r Rule) *Chain {
	if r != nil {
		c.rules = append(c.rules, namedRule{name: name, rule: r, guard: true})
	}
	return c
}

// Len is the number of rules in the chain.
func (c *Chain) Len() int { return len(c.rules) }

// Check runs the chain.
func (c *Chain) Check(ctx context.Context, in *wisp.Input) (d wisp.Decision) {
	for _, nr := range c.rules {
		if (in.Vanish || in.Membership) && !nr.guard {
			continue
		}
		d = c.run(ctx, nr, in)
		if d.Action != wisp.Accept {
			return d
		}
	}
	return wisp.Accepted
}

func (c *Chain) run(ctx context.Context, nr namedRule, in *wisp.Input) (d wisp.Decision) {
	defer func() {
		if p := recover(); p != nil {
			if c.log != nil {
				c.log.Error("policy rule panicked", "rule", nr.name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			d = wisp.Decision{Action: wisp.Reject, Reason: wisp.InternalError}
		}
	}()
	d = nr.rule.Check(ctx, in)
	if d.Action == wisp.Reject && !wisp.HasPrefix(d.Reason) {
		// A rule must say why with a prefix; a bare message would break
		// clients that parse it.
		d.Reason = wisp.Reason(wisp.PrefixBlocked, strings.TrimSpace(d.Reason))
	}
	return d
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
