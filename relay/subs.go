package relay

import (
	"encoding/json"
	"sync"

	"github.com/nbd-wtf/go-nostr"
)

// sub is one open subscription of one connection.
//
// Until its stored events and EOSE are sent, live events are parked in
// pending; afterwards they go straight to the connection. Only events with a
// sequence number above the watermark of the stored query are released from
// pending, so nothing is sent twice and nothing falls in the gap.
type sub struct {
	c       *conn
	id      string
	head    []byte // `["EVENT",<id as JSON>,` — built once, shared by every frame
	filters []nostr.Filter
	cost    int                       // bytes held while open, see subCost
	search  []func(*nostr.Event) bool // per filter, its search matcher (search.go); nil: none

	mu           sync.Mutex
	live         bool
	watermark    int64 // highest seq the stored query could see
	closed       bool
	pending      []liveEvent
	pendingBytes int

	// stamp deduplicates candidates within one fan-out; only the
	// broadcaster touches it.
	stamp uint64
}

type liveEvent struct {
	seq int64 // 0 for ephemeral events, which are never in the store
	raw []byte
}

func newSub(c *conn, id string, filters []nostr.Filter) *sub {
	idJSON, _ := json.Marshal(id) // a string always marshals
	head := make([]byte, 0, len(idJSON)+10)
	head = append(head, `["EVENT",`...)
	head = append(head, idJSON...)
	head = append(head, ',')
	return &sub{c: c, id: id, head: head, filters: filters, cost: subCost(id, filters), search: c.r.searchMatchers(filters)}
}

func (s *sub) matches(ev *nostr.Event) bool {
	for i := range s.filters {
		// go-nostr's Matches ignores search; the store's matcher decides it.
		if s.filters[i].Matches(ev) && (s.search == nil || s.search[i] == nil || s.search[i](ev)) {
			return true
		}
	}
	return false
}

// deliver hands a live event to the subscription; it never blocks.
func (s *sub) deliver(e liveEvent, maxPending int) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.live {
		// The broadcast of an event committed just before the stored query
		// may reach us after EOSE: it was already sent as stored.
		if e.seq != 0 && e.seq <= s.watermark {
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		s.c.sendNoWait(frame{head: s.head, body: e.raw, tail: tailBracket})
		return
	}
	s.pending = append(s.pending, e)
	s.pendingBytes += len(e.raw)
	over := s.pendingBytes > maxPending
	s.mu.Unlock()
	if over {
		s.c.evict("slow consumer: too many live events queued during a stored query")
	}
}

// goLive releases pending events above watermark, then marks the
// subscription live. It sends without holding s.mu so the broadcaster never
// waits on a slow client.
func (s *sub) goLive(send func(frame) bool, watermark int64) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		batch := s.pending
		s.pending, s.pendingBytes = nil, 0
		if len(batch) == 0 {
			s.live = true
			s.watermark = watermark
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		for _, e := range batch {
			if e.seq != 0 && e.seq <= watermark {
				continue // already among the stored events just sent
			}
			if !send(frame{head: s.head, body: e.raw, tail: tailBracket}) {
				return
			}
		}
	}
}

func (s *sub) close() {
	s.mu.Lock()
	s.closed = true
	s.pending = nil
	s.mu.Unlock()
}
