package relay

import (
	"sync"

	"github.com/nbd-wtf/go-nostr"
)

// subIndex finds the subscriptions an event may match without scanning them
// all: each filter is filed under its most selective field, and an event
// visits only the buckets of its id, author, kind and tags, plus the
// catch-all. Candidates are then confirmed with the full filter.
type subIndex struct {
	mu       sync.RWMutex
	byID     map[string]bucket
	byAuthor map[string]bucket
	byTag    map[tagKey]bucket
	byKind   map[int]bucket
	any      bucket
	count    int
	gen      uint64 // fan-out generation for sub.stamp; broadcaster only
}

// tagKey files a filter under one tag value. A struct of the two strings
// the filter already holds costs no allocation, where joining them would
// cost one per value.
type tagKey struct{ name, value string }

// bucket is the subscriptions filed under one key, each with how many of
// its filters are filed there. Most keys (an id, an author) have one
// subscription, kept inline; a map is made only for a second one. A
// bucket is a map value, so one filter value costs one map slot and no
// allocation of its own (BenchmarkSubIndexBytesPerValue).
type bucket struct {
	one  *sub
	n    int
	many map[*sub]int // set once a second subscription is filed here
}

func (b *bucket) empty() bool { return b.one == nil && len(b.many) == 0 }

// bump adds d (1 or -1) to s's count in b.
func (b *bucket) bump(s *sub, d int) {
	switch {
	case b.many != nil:
		if b.many[s] += d; b.many[s] <= 0 {
			delete(b.many, s)
		}
	case b.one == nil:
		if d > 0 {
			b.one, b.n = s, d
		}
	case b.one == s:
		if b.n += d; b.n <= 0 {
			b.one, b.n = nil, 0
		}
	case d > 0:
		b.many = map[*sub]int{b.one: b.n, s: d}
		b.one, b.n = nil, 0
	}
}

// each calls fn for every subscription in b.
func (b *bucket) each(fn func(*sub)) {
	if b.one != nil {
		fn(b.one)
	}
	for s := range b.many {
		fn(s)
	}
}

func newSubIndex() *subIndex {
	return &subIndex{
		byID:     map[string]bucket{},
		byAuthor: map[string]bucket{},
		byTag:    map[tagKey]bucket{},
		byKind:   map[int]bucket{},
	}
}

// add files every filter of s. The count per bucket lets a sub appear
// once per bucket even when two of its filters share a key.
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

func bump[K comparable](m map[K]bucket, k K, s *sub, d int) {
	b, ok := m[k]
	if !ok && d < 0 {
		return
	}
	b.bump(s, d)
	if b.empty() {
		delete(m, k)
	} else {
		m[k] = b
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
			bump(x.byTag, tagKey{name, v}, s, d)
		}
	case f.Kinds != nil:
		for _, k := range f.Kinds {
			bump(x.byKind, k, s, d)
		}
	default:
		x.any.bump(s, d)
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
	visit := func(b bucket) {
		b.each(func(s *sub) {
			if s.stamp == gen {
				return
			}
			s.stamp = gen
			if s.matches(ev) {
				fn(s)
			}
		})
	}
	visit(x.byID[ev.ID])
	visit(x.byAuthor[ev.PubKey])
	visit(x.byKind[ev.Kind])
	for _, t := range ev.Tags {
		if len(t) >= 2 && len(t[0]) == 1 {
			visit(x.byTag[tagKey{t[0], t[1]}])
		}
	}
	visit(x.any)
}
