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
	return &sub{c: c, id: id, head: head, filters: filters}
}

func (s *sub) matches(ev *nostr.Event) bool {
	for i := range s.filters {
		if s.filters[i].Matches(ev) && s.c.r.matchesSearch(&s.filters[i], ev) {
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

// subIndex finds the subscriptions an event may match without scanning them
// all: each filter is filed under its most selective field, and an event
// visits only the buckets of its id, author, kind and tags, plus the
// catch-all. Candidates are then confirmed with the full filter.
type subIndex struct {
	mu       sync.RWMutex
	byID     map[string]map[*sub]int
	byAuthor map[string]map[*sub]int
	byTag    map[string]map[*sub]int // key: name + "\x00" + value
	byKind   map[int]map[*sub]int
	any      map[*sub]int
	count    int
	gen      uint64 // fan-out generation for sub.stamp; broadcaster only
}

func newSubIndex() *subIndex {
	return &subIndex{
		byID:     map[string]map[*sub]int{},
		byAuthor: map[string]map[*sub]int{},
		byTag:    map[string]map[*sub]int{},
		byKind:   map[int]map[*sub]int{},
		any:      map[*sub]int{},
	}
}

func tagKey(name, value string) string { return name + "\x00" + value }

// add files every filter of s. The reference count per bucket lets a sub
// appear once per bucket even when two of its filters share a key.
func (x *subIndex) add(s *sub) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.count++
	for i := range s.filters {
		x.file(&s.filters[i], s, 1)
	}
}

func (x *subIndex) remove(s *sub) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.count--
	for i := range s.filters {
		x.file(&s.filters[i], s, -1)
	}
}

func (x *subIndex) size() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.count
}

func bump[K comparable](m map[K]map[*sub]int, k K, s *sub, d int) {
	b := m[k]
	if b == nil {
		if d < 0 {
			return
		}
		b = map[*sub]int{}
		m[k] = b
	}
	b[s] += d
	if b[s] <= 0 {
		delete(b, s)
		if len(b) == 0 {
			delete(m, k)
		}
	}
}

// file adds (d=1) or removes (d=-1) one filter. The choice of bucket must be
// a pure function of the filter so that removal finds what add filed.
func (x *subIndex) file(f *nostr.Filter, s *sub, d int) {
	switch {
	case f.IDs != nil:
		for _, id := range f.IDs {
			bump(x.byID, id, s, d)
		}
	case f.Authors != nil:
		for _, a := range f.Authors {
			bump(x.byAuthor, a, s, d)
		}
	case len(f.Tags) > 0:
		name, values := selectiveTag(f.Tags)
		for _, v := range values {
			bump(x.byTag, tagKey(name, v), s, d)
		}
	case f.Kinds != nil:
		for _, k := range f.Kinds {
			bump(x.byKind, k, s, d)
		}
	default:
		x.any[s] += d
		if x.any[s] <= 0 {
			delete(x.any, s)
		}
	}
}

// selectiveTag picks the tag list with the fewest values (then the smallest
// name, to stay deterministic).
func selectiveTag(tags nostr.TagMap) (string, []string) {
	best := ""
	var bestVals []string
	for name, vals := range tags {
		if best == "" || len(vals) < len(bestVals) || (len(vals) == len(bestVals) && name < best) {
			best, bestVals = name, vals
		}
	}
	return best, bestVals
}

// match calls fn once for every subscription whose filters match ev. It must
// only be called from the single broadcaster goroutine (it uses sub.stamp).
func (x *subIndex) match(ev *nostr.Event, fn func(*sub)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	x.gen++
	gen := x.gen
	visit := func(b map[*sub]int) {
		for s := range b {
			if s.stamp == gen {
				continue
			}
			s.stamp = gen
			if s.matches(ev) {
				fn(s)
			}
		}
	}
	visit(x.byID[ev.ID])
	visit(x.byAuthor[ev.PubKey])
	visit(x.byKind[ev.Kind])
	for _, t := range ev.Tags {
		if len(t) >= 2 && len(t[0]) == 1 {
			visit(x.byTag[tagKey(t[0], t[1])])
		}
	}
	visit(x.any)
}
