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
//   - a REQ of one filter asks the store for a few events past its limit.
//     Events sharing the created_at of the last one within the limit are
//     sent too (the NIP asks that a tie at the boundary be sent whole, so
//     that paging by until loses nothing); the first event past the tie
//     proves more are held. If the store runs out first, everything was
//     sent; if the tie outlasts what was asked, nothing is said.
//
// A filter with limit 0 asks for no stored events, so its REQ says nothing.

const (
	hintFinish = "finish"
	hintMore   = "more"
)

// completeness follows one REQ's stored answer, on its handler.
type completeness struct {
	limit   int  // the single filter's limit, or the smallest of several
	single  bool // one filter: the store was asked for limit+extra events
	byTime  bool // results come newest first, so a created_at tie can be finished
	extra   int
	n       int   // events the store returned
	tieAt   int64 // created_at of the last event within the limit
	more    bool  // an event past the tie was seen
	unknown bool  // no hint can be given
}

// newCompleteness returns the tracker for filters and the filters to ask
// the store, with a single filter's limit raised by what finishing a tie
// and proving "more" need (filters is not changed).
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
	h.single, h.byTime = true, f.Search == ""
	h.extra = 1 // one event past the limit proves more are held
	if h.byTime {
		h.extra += min(f.Limit/10, 100) // room to finish a created_at tie
	}
	f.Limit += h.extra
	return h, []nostr.Filter{f}
}

// take counts one stored event and reports whether it belongs in the answer.
func (h *completeness) take(raw []byte) bool {
	h.n++
	switch {
	case !h.single || h.n <= h.limit:
		if h.single && h.n == h.limit && h.byTime {
			h.tieAt = rawCreatedAt(raw)
		}
		return true
	case h.more:
		return false
	case h.byTime && rawCreatedAt(raw) == h.tieAt:
		return true // the boundary's tie goes out whole
	default:
		h.more = true
		return false
	}
}

// hint is what EOSE says once the store has answered, or nil.
func (h *completeness) hint() []string {
	switch {
	case h.unknown:
		return nil
	case h.more:
		return []string{hintMore}
	case h.n < h.limit:
		return []string{hintFinish}
	case h.single && h.n < h.limit+h.extra:
		return []string{hintFinish} // the store ran out within the tie
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

// rawCreatedAt reads created_at from canonical event JSON (-1 if absent).
func rawCreatedAt(raw []byte) int64 {
	ts, _, ok := rawIDAndTime(raw)
	if !ok {
		return -1
	}
	return ts
}
