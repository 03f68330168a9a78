package relay

import (
	"encoding/json"

	"github.com/nbd-wtf/go-nostr"
)

// NIP-67: EOSE may say whether every stored event matching the REQ was
// sent (["finish"]) or more are held (["more"]). The store applies each
// filter's limit, so:
//
//   - a REQ whose store answer is shorter than the smallest limit of its
//     filters got everything: no filter reached its limit;
//   - a REQ of one filter asks the store for one event past its limit,
//     which proves more are held and is not sent.
//
// NIP-67 also asks, where possible, that a created_at tie at the limit be
// sent whole; wisp keeps to NIP-01's limit instead (clients and the
// conformance run count on it), and a client paging by until receives
// the tie again.
//
// A filter with limit 0 asks for no stored events, so its REQ says nothing.

const (
	hintFinish = "finish"
	hintMore   = "more"
)

// completeness follows one REQ's stored answer, on its handler.
type completeness struct {
	limit   int  // the single filter's limit, or the smallest of several
	single  bool // one filter: the store was asked for limit+1 events
	n       int  // events the store returned
	unknown bool // no hint can be given
}

// newCompleteness returns the tracker for filters and the filters to ask
// the store, a single filter's limit raised by one (filters is not
// changed).
func newCompleteness(filters []nostr.Filter) (*completeness, []nostr.Filter) {
	h := &completeness{}
	for i := range filters {
		f := &filters[i]
		if f.LimitZero || f.Limit <= 0 {
			h.unknown = true // limit 0: stored matches were not wanted
			return h, filters
		}
		if i == 0 || f.Limit < h.limit {
			h.limit = f.Limit
		}
	}
	if len(filters) != 1 {
		return h, filters
	}
	f := filters[0]
	h.single = true
	f.Limit++ // one event past the limit proves more are held
	return h, []nostr.Filter{f}
}

// take counts one stored event and reports whether it belongs in the answer.
func (h *completeness) take([]byte) bool {
	h.n++
	return !h.single || h.n <= h.limit
}

// hint is what EOSE says once the store has answered, or nil.
func (h *completeness) hint() []string {
	switch {
	case h.unknown:
		return nil
	case h.single && h.n > h.limit:
		return []string{hintMore}
	case h.n < h.limit, h.single:
		return []string{hintFinish} // a single filter's store answer ended within its limit
	}
	return nil
}

// eoseFrame is ["EOSE", subID] with the NIP-67 hint, if any.
func eoseFrame(subID string, hint []string) []byte {
	if hint == nil {
		b, _ := json.Marshal([]string{"EOSE", subID})
		return b
	}
	b, _ := json.Marshal([]any{"EOSE", subID, hint})
	return b
}
