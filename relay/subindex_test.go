package relay

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

func hexKey(i int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "key %d", i))
	return hex.EncodeToString(h[:])
}

// matched lists the ids of the subscriptions whose filters match ev.
func matched(x *subIndex, ev *nostr.Event) []string {
	var out []string
	x.match(ev, func(s *sub) { out = append(out, s.id) })
	slices.Sort(out)
	return out
}

func TestSubIndexFilesAndUnfiles(t *testing.T) {
	x := newSubIndex()
	alice, bob := hexKey(1), hexKey(2)
	c := &conn{r: &Relay{}}
	subs := []*sub{
		{c: c, id: "a", filters: []nostr.Filter{{Authors: []string{alice}}, {Authors: []string{alice, bob}, Kinds: []int{1}}}},
		{c: c, id: "b", filters: []nostr.Filter{{Authors: []string{alice}}}},
		{c: c, id: "c", filters: []nostr.Filter{{Tags: nostr.TagMap{"p": {bob}}}}},
		{c: c, id: "d", filters: []nostr.Filter{{Kinds: []int{7}}}},
		{c: c, id: "e", filters: []nostr.Filter{{}}},
		{c: c, id: "f", filters: []nostr.Filter{{IDs: []string{hexKey(9)}}}},
	}
	for _, s := range subs {
		x.add(s)
	}
	byAlice := &nostr.Event{ID: hexKey(8), PubKey: alice, Kind: 1, Tags: nostr.Tags{{"p", bob}}}
	if got, want := matched(x, byAlice), []string{"a", "b", "c", "e"}; !slices.Equal(got, want) {
		t.Fatalf("matched %v, want %v", got, want)
	}
	reaction := &nostr.Event{ID: hexKey(9), PubKey: bob, Kind: 7}
	if got, want := matched(x, reaction), []string{"d", "e", "f"}; !slices.Equal(got, want) {
		t.Fatalf("matched %v, want %v", got, want)
	}
	// a is filed twice under alice: removing b leaves it there.
	x.remove(subs[1])
	if got, want := matched(x, byAlice), []string{"a", "c", "e"}; !slices.Equal(got, want) {
		t.Fatalf("after removing b: matched %v, want %v", got, want)
	}
	for _, s := range subs {
		if s.id != "b" {
			x.remove(s)
		}
	}
	if x.size() != 0 || len(x.byID)+len(x.byAuthor)+len(x.byTag)+len(x.byKind) != 0 || !x.any.empty() {
		t.Fatalf("index not empty after every remove: %d subs, %v %v %v %v %+v", x.size(), x.byID, x.byAuthor, x.byTag, x.byKind, x.any)
	}
	// Removing what is not filed changes nothing.
	x.remove(subs[0])
	if len(x.byAuthor) != 0 {
		t.Fatal("remove of an unfiled sub filed it")
	}
}

// BenchmarkSubIndexBytesPerValue measures what the index holds for each
// filter value of open subscriptions (one filter of 500 ids each, as a
// client asking for a thread's events would send), not counting the
// filter itself, which the subscription holds anyway.
func BenchmarkSubIndexBytesPerValue(b *testing.B) {
	const subs, values = 200, 500
	filters := make([][]nostr.Filter, subs)
	for i := range filters {
		ids := make([]string, values)
		for j := range ids {
			ids[j] = hexKey(i*values + j)
		}
		filters[i] = []nostr.Filter{{IDs: ids}}
	}
	var perValue float64
	for range b.N {
		x := newSubIndex()
		ss := make([]*sub, subs)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range ss {
			ss[i] = &sub{id: "s", filters: filters[i]}
			x.add(ss[i])
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perValue = float64(after.HeapAlloc-before.HeapAlloc) / (subs * values)
		runtime.KeepAlive(x)
	}
	b.ReportMetric(perValue, "B/value")
}
