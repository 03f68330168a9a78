package relay

import (
	"context"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

// NIP-43 kinds: what the relay publishes about its members, signed by its
// own key, and what clients send to join and leave.
const (
	kindAddMember     = 8000
	kindRemoveMember  = 8001
	kindMemberList    = 13534
	kindJoinRequest   = 28934
	kindInviteRequest = 28935
	kindLeaveRequest  = 28936
	kindMemberRole    = 33534
)

// Membership answers NIP-43 requests (package membership, which cmd/wisp
// wires in as Config.Membership). The relay hands it a client's join and
// leave requests once the signature is checked, and REQs for invite codes;
// it refuses from anyone else the kinds only the relay itself publishes.
type Membership interface {
	// Request answers a join (28934) or leave (28936) request from a
	// client; ok and msg are the OK to send, worded as NIP-43 words them.
	Request(ctx context.Context, in *wisp.Input) (ok bool, msg string)
	// Invite answers a REQ for kind 28935 from viewers: an invite event
	// the relay signed, to send before EOSE, or a prefixed reason to close
	// the REQ with (auth-required: makes the relay send its challenge).
	Invite(ctx context.Context, viewers wisp.Pubkeys) (*nostr.Event, string)
	// Limits are the front page's rows about membership.
	Limits() []wisp.LimitRow
}

// isMembershipRequest reports whether kind is a NIP-43 request to the relay.
func isMembershipRequest(kind int) bool { return kind == kindJoinRequest || kind == kindLeaveRequest }

// isRelayMembershipKind reports whether only the relay's own key publishes
// events of kind (NIP-43: "MUST be signed by the pubkey specified in the
// self field").
func isRelayMembershipKind(kind int) bool {
	switch kind {
	case kindAddMember, kindRemoveMember, kindMemberList, kindInviteRequest, kindMemberRole:
		return true
	}
	return false
}

// membershipRequest answers a NIP-43 join or leave request in admit: only
// the policy's guards judge it (a non-member must be able to ask), then its
// signature is checked here, and Membership answers it. It is never stored
// or broadcast.
func (r *Relay) membershipRequest(ev *nostr.Event, raw []byte, a arrival, authed wisp.Pubkeys) (queued, ok bool, msg string) {
	refuse := func(why string) (bool, bool, string) {
		r.stats.rejected.Add(1)
		return false, false, why
	}
	if a.c == nil {
		return refuse(wisp.Reason(wisp.PrefixBlocked, "membership requests are answered only to a client's connection"))
	}
	in := &wisp.Input{Event: ev, Raw: raw, Source: a.source, Remote: a.remote, Authed: authed, Membership: true}
	if r.cfg.Policy != nil {
		if d := r.cfg.Policy.Early(a.ctx, in); d.Action != wisp.Accept {
			if d.Action == wisp.ShadowReject {
				return false, true, ""
			}
			return refuse(d.Reason)
		}
	}
	if !verifySig(ev) {
		return refuse(wisp.Reason(wisp.PrefixInvalid, "bad signature"))
	}
	ok, msg = r.cfg.Membership.Request(a.ctx, in)
	if !ok {
		r.stats.rejected.Add(1)
	}
	return false, ok, msg
}

// sendInvite answers a REQ that asks for NIP-43 invite codes (kind 28935):
// it sends one fresh invite event on the subscription, or closes a REQ
// that asks for nothing else when the connection may not have one. It
// reports false when the REQ was closed.
func (c *conn) sendInvite(s *sub) bool {
	m := c.r.cfg.Membership
	if m == nil || !asksForKind(s.filters, kindInviteRequest) {
		return true
	}
	ev, why := m.Invite(c.ctx, c.auth.pubkeys())
	if ev == nil {
		if !onlyKind(s.filters, kindInviteRequest) {
			return true // the rest of the REQ is served
		}
		c.closeSub(s.id)
		if wisp.IsReason(why, wisp.PrefixAuthRequired) {
			c.sendChallenge()
		}
		c.closed(s.id, why)
		return false
	}
	return c.sendWait(frame{head: s.head, body: canonicalEvent(ev), tail: tailBracket})
}

// asksForKind reports whether a filter names kind among its kinds.
func asksForKind(filters []nostr.Filter, kind int) bool {
	for i := range filters {
		for _, k := range filters[i].Kinds {
			if k == kind {
				return true
			}
		}
	}
	return false
}

// onlyKind reports whether every filter asks for kind alone.
func onlyKind(filters []nostr.Filter, kind int) bool {
	for i := range filters {
		if len(filters[i].Kinds) != 1 || filters[i].Kinds[0] != kind {
			return false
		}
	}
	return true
}
