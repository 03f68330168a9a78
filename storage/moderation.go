package storage

import (
	"context"

	"github.com/nbd-wtf/go-nostr"
)

// ListEntry is one entry of a moderation list: a pubkey, an event id, a
// kind or an IP address, with the reason an admin gave.
type ListEntry struct {
	Key    string
	Reason string
}

// Moderation keeps the relay's moderation state (NIP-86): named lists of
// keys, and relay settings an admin changed. Lists and keys are opaque to
// the store; package policy names them.
type Moderation interface {
	// ListEntries returns every entry of a list, ordered by key.
	ListEntries(ctx context.Context, list string) ([]ListEntry, error)
	// PutListEntry adds key to list (replacing its reason) and removes it
	// from the lists in removeFrom, in one transaction.
	PutListEntry(ctx context.Context, list, key, reason string, removeFrom ...string) error
	// DeleteListEntry removes key from list and says whether it was there;
	// a missing key is no error. Of several processes removing one key at
	// once, exactly one is told it removed it: a one-use entry (an invite
	// code) is spent once across nodes.
	DeleteListEntry(ctx context.Context, list, key string) (removed bool, err error)
	// Settings returns every stored setting.
	Settings(ctx context.Context) (map[string]string, error)
	// SetSetting stores one setting.
	SetSetting(ctx context.Context, key, value string) error
}

// Eraser removes and reads stored events by filter, for moderation.
type Eraser interface {
	// DeleteMatching removes every stored event that matches any of the
	// filters (limits are ignored; a search matches as in Query) and
	// returns how many it removed. It works in small transactions, so the
	// relay's writer is never held off for long; events stored meanwhile
	// may survive.
	DeleteMatching(ctx context.Context, filters []nostr.Filter) (int64, error)
	// Scan calls fn with the stored JSON of every event that matches any
	// of the filters (limits are honoured per filter; none means all; a
	// search matches as in Query), each event once, newest first within
	// each filter (best match first for a search). Unlike Query it
	// streams from the database and holds no result set in memory; raw is
	// valid only during the call.
	Scan(ctx context.Context, filters []nostr.Filter, fn func(raw []byte) error) error
}
