package storage

import (
	"context"

	"github.com/nbd-wtf/go-nostr"
)

// HLLCounter is implemented by engines that can return, with a count, the
// NIP-45 HyperLogLog of the counted events' authors, which lets clients merge
// counts from several relays.
type HLLCounter interface {
	// CountHLL counts like Count and also returns the 256 registers of
	// NIP-45's HyperLogLog over the pubkeys of the counted events, each read
	// at offset (8 to 24, as the NIP derives it from the filter). hll is nil
	// when the count is approximate, since registers of part of the events
	// would understate the rest.
	CountHLL(ctx context.Context, filters []nostr.Filter, offset int) (count int64, approximate bool, hll []byte, err error)
}
