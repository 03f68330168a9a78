package dashboard

import (
	"container/heap"
	"slices"
	"strings"
	"sync"
)

// topK finds the most frequent keys of a stream in fixed memory: the
// space-saving algorithm (Metwally, Agrawal, El Abbadi, 2005) keeps k
// counters; a key not counted takes over the smallest counter, inheriting
// its count as its possible overcount. Any key seen more than n/k times
// of n is among the k, and a counter is never below its key's true
// count. Clients choose the keys (pubkeys, addresses), so nothing here
// may grow with them: the map and the heap hold at most k entries.
type topK struct {
	k     int
	byKey map[string]*counter
	heap  counterHeap // smallest count first
}

type counter struct {
	key   string
	count int64
	over  int64 // at most this much of count may belong to keys it replaced
	index int   // in the heap
}

func newTopK(k int) *topK {
	return &topK{k: k, byKey: make(map[string]*counter, k), heap: make(counterHeap, 0, k)}
}

// add counts one occurrence of key.
func (t *topK) add(key string) {
	if c, ok := t.byKey[key]; ok {
		c.count++
		heap.Fix(&t.heap, c.index)
		return
	}
	if len(t.heap) < t.k {
		c := &counter{key: strings.Clone(key), count: 1}
		t.byKey[c.key] = c
		heap.Push(&t.heap, c)
		return
	}
	c := t.heap[0] // the smallest counter goes to the newcomer
	delete(t.byKey, c.key)
	c.key, c.over = strings.Clone(key), c.count
	c.count++
	t.byKey[c.key] = c
	heap.Fix(&t.heap, 0)
}

// len is the number of keys counted, at most k.
func (t *topK) len() int { return len(t.heap) }

// Entry is one key of a top list and its count.
type Entry struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// merged returns the n keys with the greatest counts over the sketches,
// summed key by key, the greatest first (ties by key).
func merged(n int, sketches ...*topK) []Entry {
	sum := map[string]int64{}
	for _, t := range sketches {
		for _, c := range t.heap {
			sum[c.key] += c.count
		}
	}
	out := make([]Entry, 0, len(sum))
	for k, v := range sum {
		out = append(out, Entry{k, v})
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

type counterHeap []*counter

func (h counterHeap) Len() int           { return len(h) }
func (h counterHeap) Less(i, j int) bool { return h[i].count < h[j].count }
func (h counterHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *counterHeap) Push(x any) {
	c := x.(*counter)
	c.index = len(*h)
	*h = append(*h, c)
}
func (h *counterHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// recent is a topK over a sliding window: counts go into the current
// window, and rotate makes it the previous one and starts a new one, so
// that top shows who was busiest over the last one to two windows rather
// than since the relay started. It holds at most 2k keys.
type recent struct {
	mu        sync.Mutex
	k         int
	cur, prev *topK
}

func newRecent(k int) *recent { return &recent{k: k, cur: newTopK(k), prev: newTopK(k)} }

func (r *recent) add(key string) {
	r.mu.Lock()
	r.cur.add(key)
	r.mu.Unlock()
}

func (r *recent) rotate() {
	r.mu.Lock()
	r.prev, r.cur = r.cur, newTopK(r.k)
	r.mu.Unlock()
}

// top returns the n busiest keys of both windows.
func (r *recent) top(n int) []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return merged(n, r.cur, r.prev)
}

// size is the number of keys held.
func (r *recent) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur.len() + r.prev.len()
}
