package storage

import (
	"context"
	"errors"

	"github.com/nbd-wtf/go-nostr"
)

// ErrTooMany is returned by IDLister.ListIDs when more events match than
// the caller allowed.
var ErrTooMany = errors.New("too many matching events")

// IDLister is implemented by engines that can list the (created_at, id) of
// matching events without reading their JSON: what negentropy set
// reconciliation (NIP-77) needs.
type IDLister interface {
	// ListIDs calls fn with the created_at and id (32 bytes, valid only
	// during the call) of every stored event that matches any of the
	// filters, each event once, no expired event, in no particular order.
	// Limits are ignored. After max events (max > 0) it stops and returns
	// ErrTooMany.
	ListIDs(ctx context.Context, filters []nostr.Filter, max int, fn func(createdAt int64, id []byte) error) error
}
