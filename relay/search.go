package relay

import (
	"sync"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// NIP-50 search. The store serves stored events (storage.Searcher); the
// relay only decides whether search is on, and matches the live events of
// search subscriptions with the matcher the store hands back for each
// search, so that they match as the store's index would find them.

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

// searchMatchers returns, for each filter, the store's matcher of its
// search (nil for a filter without one); nil when no filter searches.
func (r *Relay) searchMatchers(filters []nostr.Filter) []func(*nostr.Event) bool {
	s, ok := r.store.(storage.Searcher)
	if !ok {
		return nil
	}
	var out []func(*nostr.Event) bool
	for i := range filters {
		if filters[i].Search == "" {
			continue
		}
		if out == nil {
			out = make([]func(*nostr.Event) bool, len(filters))
		}
		out[i] = s.SearchMatcher(filters[i].Search)
	}
	return out
}
