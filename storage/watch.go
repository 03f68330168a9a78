package storage

import "context"

// Watcher is implemented by an engine that other processes write to at the
// same time (PostgreSQL, under several wisp nodes): it says when another
// process may have changed the store, so that a node's live fan-out and
// its moderation lists follow the other nodes' writes at once rather than
// at the next poll.
type Watcher interface {
	// Watch calls fn with what may have changed, from its call until ctx
	// ends, then returns ctx's error. A notice may be spurious, and several
	// may come as one; the store's own writes may be announced too, but
	// need not be (PostgreSQL leaves out its own Saves: the caller made
	// them, and a node hearing its own batches read them back). After
	// a lost connection it reconnects with backoff and, once listening
	// again, calls fn(ChangedAll), since notices in between are lost. Calls
	// of fn never overlap, and fn must not block.
	Watch(ctx context.Context, fn func(Change)) error
}

// Change says which part of a store a Watcher's notice is about.
type Change uint8

const (
	// ChangedEvents: events were stored or deleted.
	ChangedEvents Change = 1 << iota
	// ChangedModeration: the NIP-86 lists or settings changed.
	ChangedModeration

	// ChangedAll: anything may have changed (after a reconnection).
	ChangedAll = ChangedEvents | ChangedModeration
)
