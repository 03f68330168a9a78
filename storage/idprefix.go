package storage

import "context"

// PrefixLookup is implemented by engines that can tell whether an event
// whose id starts with some bytes is stored: what NIP-29 timeline
// references ("previous" tags, the first 8 hex digits of an id) need.
type PrefixLookup interface {
	// HasIDPrefix reports whether a stored event's id starts with prefix, an
	// even number of lowercase hex digits from 2 to 64. Expired events not
	// yet purged count.
	HasIDPrefix(ctx context.Context, prefix string) (bool, error)
}
