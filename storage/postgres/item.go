package postgres

import (
	"fmt"
	"slices"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

// kinds with a meaning for the store.
const (
	kindDeletion = 5    // NIP-09
	kindVanish   = 62   // NIP-62
	kindGiftWrap = 1059 // NIP-59
)

// item is one event of a Save batch with everything the transaction needs
// of it, worked out before the transaction begins.
type item struct {
	ev      *nostr.Event
	raw     []byte
	id, pk  [32]byte
	created int64
	kind    int
	// address: a replaceable or addressable event, at (pk, kind, d).
	address bool
	d       string
	exp     *int64   // NIP-40 expiration, nil without one
	tags    []tagRow // the distinct single-letter (name, first value) pairs

	delIDs   [][32]byte   // a kind 5's e targets
	delAddrs []addrTarget // a kind 5's a targets of its own pubkey
	pTargets [][32]byte   // a gift wrap's p-tagged pubkeys (NIP-62 covers them)

	// search is the content as a tsvector literal when the kind is
	// indexed (searchFor says for which list of kinds it was computed).
	search    *string
	searchFor *[]int
}

type tagRow struct {
	name  string
	value string
}

type addrTarget struct {
	kind int
	d    string
}

// addrKey names an address: the newest event at it is the current one.
type addrKey struct {
	pk   [32]byte
	kind int
	d    string
}

func (it *item) addr() addrKey { return addrKey{it.pk, it.kind, it.d} }

// prepare checks an item and works out what Save needs of it.
func prepare(in *storage.Item, it *item) error {
	ev := in.Event
	switch {
	case ev == nil:
		return fmt.Errorf("no event: %w", ErrBadEvent)
	case len(in.Raw) == 0:
		return fmt.Errorf("empty raw json: %w", ErrBadEvent)
	case nostr.IsEphemeralKind(ev.Kind):
		return fmt.Errorf("ephemeral kind %d: %w", ev.Kind, ErrBadEvent)
	case !evkey.DecodeHex32(ev.ID, &it.id):
		return fmt.Errorf("id %q: %w", ev.ID, ErrBadEvent)
	case !evkey.DecodeHex32(ev.PubKey, &it.pk):
		return fmt.Errorf("pubkey %q: %w", ev.PubKey, ErrBadEvent)
	}
	it.ev, it.raw = ev, in.Raw
	it.created, it.kind = int64(ev.CreatedAt), ev.Kind
	if replaceable, addressable := nostr.IsReplaceableKind(ev.Kind), nostr.IsAddressableKind(ev.Kind); replaceable || addressable {
		it.address = true
		if addressable {
			it.d = ev.Tags.GetD()
		}
	}
	if e, ok, _ := storage.Expiration(ev.Tags); ok {
		it.exp = &e
	}
	for _, tag := range ev.Tags {
		if len(tag) < 2 {
			continue
		}
		if evkey.IndexedTagName(tag[0]) {
			if r := (tagRow{tag[0], tag[1]}); !slices.Contains(it.tags, r) {
				it.tags = append(it.tags, r)
			}
		}
		var target [32]byte
		switch {
		case ev.Kind == kindDeletion && tag[0] == "e":
			if evkey.DecodeHex32(tag[1], &target) && !slices.Contains(it.delIDs, target) {
				it.delIDs = append(it.delIDs, target)
			}
		case ev.Kind == kindDeletion && tag[0] == "a":
			kind, author, d, ok := evkey.ParseAddress(tag[1])
			if a := (addrTarget{kind, d}); ok && author == ev.PubKey && !slices.Contains(it.delAddrs, a) {
				it.delAddrs = append(it.delAddrs, a)
			}
		case ev.Kind == kindGiftWrap && tag[0] == "p":
			if evkey.DecodeHex32(tag[1], &target) && !slices.Contains(it.pTargets, target) {
				it.pTargets = append(it.pTargets, target)
			}
		}
	}
	return nil
}
