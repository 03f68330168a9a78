package storage

import "context"

// SeqLister is implemented by engines that can list stored events in the
// order they were stored: what a live up stream follows, so that it also
// sends the events another process stored in the same database.
type SeqLister interface {
	// LastSeq returns the highest sequence number given out so far (0:
	// none), deleted events included.
	LastSeq(ctx context.Context) (int64, error)
	// EventsAfter calls fn with the sequence number and stored JSON (valid
	// only during the call) of up to limit stored events whose sequence
	// number is above after, in ascending order, no expired event.
	EventsAfter(ctx context.Context, after int64, limit int, fn func(seq int64, raw []byte) error) error
}
