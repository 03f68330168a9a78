package dashboard

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/wisp-relay/wisp/metrics"
)

// The sketch keeps k keys whatever the stream, finds every key more
// frequent than 1/k, and never counts a key it holds below its truth.
func TestTopKIsBoundedAndFindsHeavyHitters(t *testing.T) {
	const k = 16
	tk := newTopK(k)
	truth := map[string]int64{}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	add := func(key string) {
		tk.add(key)
		truth[key]++
		n++
	}
	for i := range 100000 {
		switch {
		case i%10 == 0:
			add("heavy-a") // 10%
		case i%13 == 0:
			add("heavy-b") // about 7%
		default:
			add(fmt.Sprint("noise-", rng.Uint64())) // all distinct
		}
		if tk.len() > k || len(tk.byKey) > k {
			t.Fatalf("after %d keys the sketch holds %d (map %d), more than %d", i+1, tk.len(), len(tk.byKey), k)
		}
	}
	top := merged(k, tk)
	if top[0].Key != "heavy-a" || top[1].Key != "heavy-b" {
		t.Fatalf("top %v: want heavy-a then heavy-b first", top[:2])
	}
	for _, c := range tk.heap {
		if c.count < truth[c.key] || c.count-c.over > truth[c.key] {
			t.Fatalf("%s counted %d (over %d), true count %d", c.key, c.count, c.over, truth[c.key])
		}
	}
}

// The busiest lists show the last one to two windows.
func TestRecentForgetsOldWindows(t *testing.T) {
	r := newRecent(4)
	r.add("old")
	r.rotate()
	r.add("new")
	if got := r.top(10); len(got) != 2 {
		t.Fatalf("one rotation: %v, want old and new", got)
	}
	r.rotate()
	if got := r.top(10); len(got) != 1 || got[0].Key != "new" {
		t.Fatalf("two rotations: %v, want only new", got)
	}
	if r.size() > 8 {
		t.Fatalf("size %d", r.size())
	}
}

// quantile reads percentiles from the difference of two cumulative
// histograms as Prometheus would.
func TestQuantile(t *testing.T) {
	bounds := []float64{0.001, 0.002, 0.004, 0.008}
	before := metrics.Histogram{Count: 10, Bounds: bounds, Counts: []uint64{10, 10, 10, 10}}
	// 100 more: 50 in (0.001, 0.002], 50 in (0.004, 0.008].
	now := metrics.Histogram{Count: 110, Bounds: bounds, Counts: []uint64{10, 60, 60, 110}}
	if got := quantile(0.5, now, before); got != 0.002 {
		t.Errorf("p50 %v, want 0.002", got)
	}
	if got := quantile(0.95, now, before); got < 0.00759 || got > 0.00761 {
		t.Errorf("p95 %v, want 0.0076 (0.004 + 0.004*45/50)", got)
	}
	if got := quantile(0.95, before, before); got != 0 {
		t.Errorf("no new observations: %v, want 0", got)
	}
	// Past the last bound: the last bound.
	over := metrics.Histogram{Count: 120, Bounds: bounds, Counts: []uint64{10, 10, 10, 10}}
	if got := quantile(0.5, over, before); got != 0.008 {
		t.Errorf("beyond the buckets %v, want 0.008", got)
	}
}

// What the relay pays per EVENT for the busiest lists: one IP and one
// author counted, from every core at once; "spread" keeps replacing
// counters (more distinct keys than the sketch holds), "one" hits.
func BenchmarkTallyEvent(b *testing.B) {
	for _, distinct := range []int{1, 10000} {
		name := "one"
		if distinct > 1 {
			name = "spread"
		}
		b.Run(name, func(b *testing.B) {
			t := NewTally(true)
			keys := make([]string, distinct)
			for i := range keys {
				keys[i] = fmt.Sprintf("%064x", i)
			}
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(distinct)
				for pb.Next() {
					t.EventFrom(keys[i][:15])
					t.EventBy(keys[i])
					i = (i + 7919) % distinct
				}
			})
		})
	}
}
