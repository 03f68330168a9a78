package storage

import "github.com/nbd-wtf/go-nostr"

// Searcher is implemented by engines that serve NIP-50 search filters.
//
// A filter with Search matches the events of the indexed kinds whose content
// holds the words of the search, as the engine's index finds them, and the
// filter's other fields as usual. Query serves a search filter by
// relevance, best first, ties newest first, instead of by time; a search
// without words matches nothing. How words are split and folded is the
// engine's: the relay asks it, through SearchMatcher, to match live events
// as the engine would find them stored.
type Searcher interface {
	// SearchKinds returns the kinds whose content is indexed, ascending;
	// empty means search is off and search filters match nothing.
	SearchKinds() []int
	// SearchMatcher returns what reports whether an event matches search
	// as a stored search finds it: of an indexed kind, its content holding
	// the search's words. The filter's other fields are the caller's to
	// check. The matcher is safe for concurrent use and cheap to call.
	SearchMatcher(search string) func(ev *nostr.Event) bool
}
