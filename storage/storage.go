// Package storage defines the event store behind the relay. Engines live in
// sub-packages (storage/sqlite) and must pass the shared conformance suite in
// storage/storagetest.
package storage

import (
	"context"
	"errors"

	"github.com/nbd-wtf/go-nostr"
)

// Outcome says what Save did with one event.
type Outcome int

const (
	// Stored: the event is now in the store (durable once Save returns).
	Stored Outcome = iota + 1
	// Duplicate: an event with the same id was already stored.
	Duplicate
	// Deleted: the event was deleted earlier (NIP-09) or its author asked to
	// vanish (NIP-62), and it may not come back.
	Deleted
	// Superseded: a newer version of this replaceable/addressable event is stored.
	Superseded
)

func (o Outcome) String() string {
	switch o {
	case Stored:
		return "stored"
	case Duplicate:
		return "duplicate"
	case Deleted:
		return "deleted"
	case Superseded:
		return "superseded"
	}
	return "unknown"
}

// Result is the outcome of saving one event.
type Result struct {
	Outcome Outcome
	// Seq is the event's insertion sequence number when Outcome is Stored.
	// Sequence numbers grow with every stored event.
	Seq int64
}

// Item is one event handed to Save: the parsed event and its canonical JSON,
// which the store keeps as it is and serves back byte for byte.
type Item struct {
	Event *nostr.Event
	Raw   []byte
}

// Errors shared by engines.
var (
	ErrClosed   = errors.New("store closed")
	ErrTooNew   = errors.New("database was made by a newer version of wisp")
	ErrBadQuery = errors.New("filter cannot be served")
)

// Store is an event store. All methods are safe for concurrent use, but Save
// is meant to be called by one writer at a time.
type Store interface {
	// Save stores a batch of events in one transaction and returns one Result
	// per item, in order. When it returns a nil error, every Stored event is
	// durable. Replaceable (0, 3, 10000-19999) and addressable (30000-39999)
	// events keep only the newest per key (lowest id on a tie); kind 5 events
	// delete what they name (NIP-09) inside the same transaction. A kind 62
	// (NIP-62, request to vanish) deletes every event of its pubkey up to
	// its created_at (kind 5 included, earlier kind 62 excepted) and every
	// gift wrap (1059) p-tagging it, and such events are refused (Deleted)
	// from then on; the caller passes only requests that name this relay.
	// Ephemeral events (20000-29999) must not be passed.
	Save(ctx context.Context, items []Item) ([]Result, error)

	// Query calls fn with the stored JSON of every event that matches any of
	// the filters, newest first (created_at descending, then id ascending),
	// each filter honouring its own Limit (0 with LimitZero means none; the
	// caller caps limits), with no event twice and no expired event.
	// watermark is the highest sequence number visible when the query
	// began: the results are the matches at that moment (less any deleted
	// while the query runs), and an event with a higher Seq is never among
	// them. fn may block, as a client that reads slowly makes it: the engine
	// holds only a bounded amount of results in memory meanwhile (it reads
	// them in pages), whatever the filters' limits.
	// Returning an error from fn stops the query and returns that error.
	// A filter with Search (NIP-50) matches nothing unless the engine is a
	// Searcher; see there for how it is served.
	Query(ctx context.Context, filters []nostr.Filter, fn func(raw []byte) error) (watermark int64, err error)

	// Count returns how many stored events match any of the filters (NIP-45),
	// each event counted once, by the rules of Query except that limits are
	// ignored: no expired event, and search as Query serves it. It counts
	// from indexes without reading the events' JSON. When more events match
	// than the engine is willing to count, it may stop and return a lower
	// bound with approximate true.
	Count(ctx context.Context, filters []nostr.Filter) (count int64, approximate bool, err error)

	// Has reports whether an event with this id (64 lowercase hex) is stored.
	Has(ctx context.Context, id string) (bool, error)

	// StoredSig returns the signature stored with the event of this id, and
	// whether one is stored. An id commits to an event's content but not to
	// its signature, so a re-sent event is a known duplicate only when it
	// carries the very signature stored (see relay/admit.go).
	StoredSig(ctx context.Context, id string) (sig string, found bool, err error)

	// DeleteExpired removes events whose NIP-40 expiration is at or before
	// now (unix seconds) and returns how many were removed.
	DeleteExpired(ctx context.Context, now int64) (int64, error)

	// Close releases the store; it waits for nothing but open calls.
	Close() error
}
