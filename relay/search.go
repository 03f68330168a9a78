package relay

import (
	"slices"
	"sync"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// NIP-50 search. The store serves stored events (storage.Searcher); the
// relay only decides whether search is on and matches live events of
// search subscriptions by the same rule: an event of an indexed kind whose
// content holds every word of the search (storage.SearchTerms splits and
// folds words exactly as the store's index does).

// searchState is what the relay knows about search, read from the store
// once.
type searchState struct {
	once  sync.Once
	kinds []int // indexed kinds; empty: search is off
}

// searchKinds returns the kinds the store indexes for search, nil when the
// store has no search.
func (r *Relay) searchKinds() []int {
	r.search.once.Do(func() {
		if s, ok := r.store.(storage.Searcher); ok {
			r.search.kinds = s.SearchKinds()
		}
	})
	return r.search.kinds
}

// searchEnabled reports whether search filters are served.
func (r *Relay) searchEnabled() bool { return len(r.searchKinds()) > 0 }

// matchesSearch reports whether a live event passes f's search, if it has
// one; the other fields are go-nostr's Filter.Matches, which ignores search.
func (r *Relay) matchesSearch(f *nostr.Filter, ev *nostr.Event) bool {
	if f.Search == "" {
		return true
	}
	if !slices.Contains(r.searchKinds(), ev.Kind) {
		return false
	}
	return storage.MatchesSearch(storage.SearchTerms(f.Search), ev.Content)
}
