package wisp

import (
	"context"

	"github.com/nbd-wtf/go-nostr"
)

// KeeperBatch is one write batch as a state keeper (NIP-29 groups) stages
// it on the relay's single writer; relay/keeper.go says when each method
// is called. Only the writer goroutine calls it.
type KeeperBatch interface {
	// Stage judges one event of the batch against the state as the events
	// staged before it left it: Accept, Reject with a reason, or
	// ShadowReject (answered OK true with the reason, neither stored nor
	// broadcast). It returns the events the keeper signed in answer, to
	// save right after this one.
	Stage(in *Input) (Decision, []*nostr.Event)
	// Extra returns the events to save after the batch's own (snapshots of
	// the state the batch changed).
	Extra() []*nostr.Event
	// Commit applies what was staged, once the batch is durable; it may
	// remove events (a moderator's deletion) before the batch is answered.
	Commit(ctx context.Context)
	// Abort forgets what was staged: the batch was not saved.
	Abort()
}

// LimitRow is one line of the limits the relay's front page shows.
type LimitRow struct{ Name, Value string }
