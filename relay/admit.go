package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

// arrival is where an event comes from, as the checks before the verify pool
// see it: a client connection (c set) or Ingest (c nil).
type arrival struct {
	ctx      context.Context // bounds the policy and the wait for the verify pool
	c        *conn           // the client connection; nil for Ingest
	source   wisp.Source
	remote   string // the client's IP, or the relay an event came from
	noVerify bool   // Ingest only: skip the signature check
	done     func(ok bool, msg string)
}

// admit runs, for events of every source and in this order, the checks
// before the verify pool: the cheap checks, the id hash, the relay's own
// rules (NIP-70, NIP-62), the policy's early stage and the stored-id lookup.
// It either queues the event for the verify pool (queued) or returns the
// answer for the caller to give; the refusal counters are kept here.
func (r *Relay) admit(ev *nostr.Event, a arrival) (queued, ok bool, msg string) {
	refuse := func(why string) (bool, bool, string) {
		r.stats.rejected.Add(1)
		return false, false, why
	}
	if r.draining.Load() {
		// Shutting down: nothing is checked, looked up or verified any more.
		return refuse(wisp.Reason(wisp.PrefixError, "relay is shutting down"))
	}
	raw := canonicalEvent(ev)
	if why := checkEvent(ev, raw, r.limits(), time.Now()); why != "" {
		return refuse(why)
	}
	if ev.Kind == nostr.KindClientAuthentication {
		if a.c != nil {
			return refuse(wisp.Reason(wisp.PrefixInvalid, "auth events are sent with AUTH, not EVENT"))
		}
		return refuse(wisp.Reason(wisp.PrefixInvalid, "auth events are not stored"))
	}
	if !checkID(ev) {
		return refuse(wisp.Reason(wisp.PrefixInvalid, "event id does not match its content"))
	}
	var authed wisp.Pubkeys
	if a.c != nil {
		authed = a.c.auth.pubkeys()
	}
	if isProtected(ev) {
		// NIP-70: only its author, authenticated, may publish it; an
		// operator's import is trusted.
		switch {
		case a.c == nil && a.source == wisp.SourceImport:
		case a.c == nil || (len(authed) > 0 && !authed.Has(ev.PubKey)):
			return refuse(wisp.Reason(wisp.PrefixRestricted, "this event may only be published by its author (NIP-70)"))
		case len(authed) == 0:
			return refuse(wisp.Reason(wisp.PrefixAuthRequired, "this event may only be published by its author (NIP-70); authenticate first"))
		}
	}
	if a.source != wisp.SourceImport && embedsOthersProtected(ev) {
		// NIP-70: a repost must not embed a protected event; its author may.
		return refuse(wisp.Reason(wisp.PrefixBlocked, "this repost embeds a protected event (NIP-70); repost it with empty content"))
	}
	if a.source != wisp.SourceImport && r.cfg.Info.Self != "" && ev.PubKey == r.cfg.Info.Self {
		// Nothing the relay signed may come back from outside: a replayed
		// put-user would let a removed member back in.
		return refuse(wisp.Reason(wisp.PrefixBlocked, "events of this relay's own key are published by the relay itself"))
	}
	if r.cfg.Membership != nil {
		if isRelayMembershipKind(ev.Kind) && a.source != wisp.SourceImport {
			return refuse(wisp.Reason(wisp.PrefixBlocked, fmt.Sprintf("events of kind %d are published by this relay itself (NIP-43)", ev.Kind)))
		}
		if isMembershipRequest(ev.Kind) {
			return r.membershipRequest(ev, raw, a, authed)
		}
	}
	vanish := ev.Kind == kindVanish
	if vanish && !r.forThisRelay(ev, a.c) {
		return refuse(wisp.Reason(wisp.PrefixBlocked, "this request to vanish names other relays"))
	}
	var in *wisp.Input
	if r.cfg.Policy != nil || r.cfg.Groups != nil {
		in = &wisp.Input{Event: ev, Raw: raw, Source: a.source, Remote: a.remote, Authed: authed, Received: time.Now(), Vanish: vanish}
	}
	if r.cfg.Policy != nil {
		if d := r.cfg.Policy.Early(a.ctx, in); d.Action != wisp.Accept {
			if d.Action == wisp.ShadowReject {
				r.stats.rejected.Add(1)
				return false, true, ""
			}
			return refuse(d.Reason)
		}
	}
	if !isEphemeral(ev.Kind) {
		// A stored event with the very signature received needs no second
		// check: its id commits to its content, and what is stored was
		// verified. The id does not commit to the signature, though: one
		// that differs (corrupted, or another valid one) is verified like a
		// new event, and Save then finds the duplicate.
		sig, found, err := r.store.StoredSig(a.ctx, ev.ID)
		if err != nil {
			if a.ctx.Err() == nil {
				r.log.Error("look up event", "id", ev.ID, "err", err)
			}
			return false, false, wisp.InternalError
		}
		if found && sig == ev.Sig {
			r.stats.duplicate.Add(1)
			return false, true, wisp.Reason(wisp.PrefixDuplicate, "already have this event")
		}
	}
	if r.cfg.Groups != nil {
		if d := r.cfg.Groups.Judge(a.ctx, in); d.Action != wisp.Accept {
			if d.Action == wisp.ShadowReject {
				r.stats.rejected.Add(1)
				return false, true, d.Reason
			}
			return refuse(d.Reason)
		}
	}

	p := &pending{ev: ev, raw: raw, c: a.c, in: in, noVerify: a.noVerify, source: a.source, done: a.done}
	if a.c == nil {
		p.origin = a.remote
	}
	return r.enqueue(a.ctx, p)
}

// enqueue hands p to the verify pool, or returns the answer for the
// caller to give when it cannot.
func (r *Relay) enqueue(ctx context.Context, p *pending) (queued, ok bool, msg string) {
	// Registered as a sender under drainMu, so that Shutdown closes
	// verifyCh only once no admit can send on it.
	r.drainMu.RLock()
	if r.draining.Load() {
		r.drainMu.RUnlock()
		return false, false, wisp.Reason(wisp.PrefixError, "relay is shutting down")
	}
	r.senders.Add(1)
	r.inflight.add(p)
	r.drainMu.RUnlock()
	defer r.senders.Done()

	select {
	case r.verifyCh <- p:
		return true, false, ""
	case <-ctx.Done():
		return r.withdraw(p, wisp.Reason(wisp.PrefixError, "cancelled"))
	case <-r.ctx.Done():
		return r.withdraw(p, wisp.Reason(wisp.PrefixError, "relay is shutting down"))
	}
}

// withdraw takes back an event admit could not queue, for its caller to
// answer with why; unless Shutdown has answered it meanwhile.
func (r *Relay) withdraw(p *pending, why string) (queued, ok bool, msg string) {
	if !r.inflight.finish(p) {
		return true, false, "" // answered already
	}
	return false, false, why
}

// forThisRelay reports whether a request to vanish (NIP-62) names
// ALL_RELAYS or this relay. Events that come through Ingest were meant for
// another relay first, so for them only the configured URLs count, never
// the loopback names an unconfigured relay answers to.
func (r *Relay) forThisRelay(ev *nostr.Event, c *conn) bool {
	if c != nil {
		return r.id.namesThisRelay(ev)
	}
	return r.id.configured() && r.id.namesThisRelay(ev) || isForAllRelays(ev)
}

func isForAllRelays(ev *nostr.Event) bool {
	for _, tag := range ev.Tags {
		if len(tag) >= 2 && tag[0] == "relay" && tag[1] == allRelays {
			return true
		}
	}
	return false
}
