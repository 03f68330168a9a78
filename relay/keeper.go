package relay

import (
	"context"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

// A Keeper keeps state of its own, built from the events the relay stores,
// and judges events by it: NIP-29 groups are one (package groups, which
// cmd/wisp wires in as Config.Groups). The relay asks it at three points of
// an event's way, and the state it keeps changes only once the events
// that change it are durable:
//
//   - Judge, in admit (connection handlers and Ingest, many at once),
//     before the signature check: refusals by the state as committed, and
//     checks that need no state (an indexed lookup at most). Events the
//     relay publishes itself are not judged.
//   - on the single writer, for each batch: Stage judges each event again
//     against the state as the events staged before it left it (so that
//     two moderation events of one batch see each other), and returns the
//     events the keeper signs in answer (a relay-signed put-user for a
//     join request); Extra, once every event is staged, returns the
//     keeper's snapshots of what changed (group metadata, admins,
//     members). Everything is saved in the batch's one transaction, then
//     Commit applies what was staged (or Abort forgets it when the save
//     failed), before any event of the batch is answered.
//
// Extra events are stored and broadcast like any other, and offered to
// the stored-event hooks.
type Keeper interface {
	Judge(ctx context.Context, in *wisp.Input) wisp.Decision
	Begin() wisp.KeeperBatch
}

// A ReadGuard hides some stored and live events from some readers: the
// events of NIP-29 private groups from non-members. Viewers are the pubkeys
// a connection authenticated as; any one of them may be the one allowed.
type ReadGuard interface {
	// ReadRefusal returns "" or why a REQ, COUNT or NEG-OPEN of filters is
	// refused outright (every filter asks only for what viewers may not
	// see), with a NIP-01 prefix: auth-required: makes the relay send its
	// challenge.
	ReadRefusal(filters []nostr.Filter, viewers wisp.Pubkeys) string
	// Hidden returns filters matching what viewers may not see among the
	// stored events filters match, or nil when they may see all of them.
	Hidden(filters []nostr.Filter, viewers wisp.Pubkeys) []nostr.Filter
	// VisibleRaw reports whether viewers may see a stored event, given as
	// its canonical JSON.
	VisibleRaw(raw []byte, viewers wisp.Pubkeys) bool
	// LiveVisibility returns nil when everyone may see ev, else a function
	// telling whether viewers may.
	LiveVisibility(ev *nostr.Event) func(viewers wisp.Pubkeys) bool
}

// Groups is NIP-29, relay-based groups: a Keeper of group state and a
// ReadGuard for private and hidden groups. It is advertised in NIP-11.
type Groups interface {
	Keeper
	ReadGuard
	// NIP11 is the document's "nip29" object (nil: none).
	NIP11() any
	// Limits are the groups' limits as the front page shows them.
	Limits() []wisp.LimitRow
}

// rawVisible returns nil when the connection may see every stored event
// filters can match, else the check to run on each. It covers private
// messages and the ReadGuard.
func (c *conn) rawVisible(filters []nostr.Filter) func(raw []byte) bool {
	private := mayMatchPrivate(filters)
	var guard ReadGuard
	viewers := c.auth.pubkeys()
	if g := c.r.cfg.Groups; g != nil && g.Hidden(filters, viewers) != nil {
		guard = g
	}
	if !private && guard == nil {
		return nil
	}
	return func(raw []byte) bool {
		if private && !c.maySeeRaw(raw) {
			return false
		}
		return guard == nil || guard.VisibleRaw(raw, viewers)
	}
}

// guardRefusal is the ReadGuard's refusal of a read, or "".
func (c *conn) guardRefusal(filters []nostr.Filter) string {
	if g := c.r.cfg.Groups; g != nil {
		return g.ReadRefusal(filters, c.auth.pubkeys())
	}
	return ""
}
