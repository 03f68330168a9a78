package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip45/hyperloglog"
	"github.com/wisp-relay/wisp/storage"
)

// countCorpus stores a varied set of regular events, some expired, and
// returns them all (the expired ones included: Reference leaves them out).
func countCorpus(t *testing.T, f *fixture) (evs []*nostr.Event, alice, bob, carol key) {
	alice, bob, carol = newKey(t), newKey(t), newKey(t)
	now := time.Now().Unix()
	var batch []storage.Item
	add := func(k key, kind int, createdAt int64, tags nostr.Tags) *nostr.Event {
		it := event(t, k, kind, createdAt, tags, fmt.Sprint("event ", len(batch)))
		batch = append(batch, it)
		evs = append(evs, it.Event)
		return it.Event
	}
	root := add(alice, 1, 1000, nostr.Tags{{"t", "nostr"}})
	reply := add(bob, 1, 1001, nostr.Tags{{"e", root.ID}, {"p", alice.pk}, {"t", "nostr"}, {"t", "go"}})
	for i, k := range []key{alice, bob, carol, carol} {
		add(k, 7, 1002+int64(i), nostr.Tags{{"e", root.ID}, {"p", alice.pk}})
	}
	add(carol, 7, 1010, nostr.Tags{{"e", reply.ID}, {"p", bob.pk}})
	add(bob, 6, 1011, nostr.Tags{{"e", root.ID}, {"p", alice.pk}})
	add(carol, 3, 1012, nostr.Tags{{"p", alice.pk}, {"p", bob.pk}})
	add(bob, 3, 1013, nostr.Tags{{"p", alice.pk}})
	add(alice, 30023, 1014, nostr.Tags{{"d", "post"}, {"t", "nostr"}})
	add(alice, 1, 1015, nostr.Tags{{"e", reply.ID}, {"e", root.ID}, {"p", bob.pk}})
	for i := range 6 {
		add([]key{alice, bob, carol}[i%3], 1, 1020, nostr.Tags{{"t", "tie"}})
	}
	// Expired but not purged: never counted. Expiring later: counted.
	add(bob, 7, 1030, nostr.Tags{{"e", root.ID}, {"p", alice.pk}, {"expiration", fmt.Sprint(now - 10)}})
	add(carol, 1, 1031, nostr.Tags{{"t", "nostr"}, {"expiration", fmt.Sprint(now - 10)}})
	add(carol, 1, 1032, nostr.Tags{{"t", "nostr"}, {"expiration", fmt.Sprint(now + 3600)}})
	f.save(batch)
	return evs, alice, bob, carol
}

// countCases are filter shapes for Count, with and without limits (which
// Count ignores).
func countCases(evs []*nostr.Event, alice, bob, carol key) []nostr.Filter {
	root, reply := evs[0], evs[1]
	return []nostr.Filter{
		{},
		{Limit: 2},
		{LimitZero: true},
		{IDs: []string{root.ID, reply.ID, "bad"}},
		{IDs: []string{}},
		{Authors: []string{alice.pk}},
		{Authors: []string{alice.pk, bob.pk}, Limit: 1},
		{Authors: []string{"nope"}},
		{Kinds: []int{1}},
		{Kinds: []int{7, 6}},
		{Kinds: []int{}},
		{Authors: []string{carol.pk}, Kinds: []int{7}},
		{Tags: nostr.TagMap{"e": {root.ID}}, Kinds: []int{7}},
		{Tags: nostr.TagMap{"e": {root.ID}}, Kinds: []int{6}},
		{Tags: nostr.TagMap{"e": {root.ID}}, Kinds: []int{1}},
		{Tags: nostr.TagMap{"e": {root.ID, reply.ID}}},
		{Tags: nostr.TagMap{"e": {root.ID, reply.ID}}, Kinds: []int{7}},
		{Tags: nostr.TagMap{"p": {alice.pk}}, Kinds: []int{3}},
		{Tags: nostr.TagMap{"p": {alice.pk}}},
		{Tags: nostr.TagMap{"p": {alice.pk}}, Authors: []string{carol.pk}},
		{Tags: nostr.TagMap{"p": {alice.pk}}, IDs: []string{root.ID, reply.ID}},
		{Tags: nostr.TagMap{"t": {"nostr"}}},
		{Tags: nostr.TagMap{"t": {"nostr"}, "e": {root.ID}}},
		{Tags: nostr.TagMap{"t": {"nostr", "tie"}, "p": {alice.pk, bob.pk}}},
		{Tags: nostr.TagMap{"d": {"post"}}, Authors: []string{alice.pk}, Kinds: []int{30023}},
		{Tags: nostr.TagMap{"e": {}}},
		{Tags: nostr.TagMap{"e": nil}, Kinds: []int{3}},
		{Tags: nostr.TagMap{"client": {"x"}}},
		{Since: ts(1010)},
		{Until: ts(1010)},
		{Since: ts(1002), Until: ts(1013), Kinds: []int{7, 3}},
		{Since: ts(1020), Until: ts(1010)},
		{Since: ts(1001), Tags: nostr.TagMap{"p": {alice.pk, bob.pk}}},
		{Until: ts(1003), Tags: nostr.TagMap{"e": {root.ID}}, Kinds: []int{7}},
		{Search: "event"},
	}
}

// noLimits drops the limits Count ignores.
func noLimits(fs []nostr.Filter) []nostr.Filter {
	out := make([]nostr.Filter, len(fs))
	for i, f := range fs {
		f.Limit, f.LimitZero = 0, false
		out[i] = f
	}
	return out
}

func testCount(t *testing.T, f *fixture) {
	evs, alice, bob, carol := countCorpus(t, f)
	now := time.Now().Unix()
	cases := countCases(evs, alice, bob, carol)
	check := func(t *testing.T, fs []nostr.Filter) {
		t.Helper()
		want := int64(len(Reference(evs, noLimits(fs), now)))
		got, approx, err := f.s.Count(context.Background(), fs)
		if err != nil || approx || got != want {
			t.Errorf("count %v: %d (approximate %v), %v; want %d", fs, got, approx, err, want)
		}
	}
	for i, c := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) { check(t, filters(c)) })
	}
	// Several filters: each event once.
	for i := range cases {
		j := (i*7 + 3) % len(cases)
		k := (i*11 + 5) % len(cases)
		t.Run(fmt.Sprintf("%d+%d+%d", i, j, k), func(t *testing.T) { check(t, filters(cases[i], cases[j], cases[k])) })
	}
	if n := len(Reference(evs, filters(nostr.Filter{Tags: nostr.TagMap{"e": {evs[0].ID}}, Kinds: []int{7}}), now)); n != 4 {
		t.Errorf("reference: %d reactions to the root, want 4", n)
	}
}

// Count follows replacements, deletions and purges.
func testCountFollowsChanges(t *testing.T, f *fixture) {
	k := newKey(t)
	all := filters(nostr.Filter{})
	byK := filters(nostr.Filter{Authors: []string{k.pk}})
	expect := func(fs []nostr.Filter, want int64) {
		t.Helper()
		got, approx, err := f.s.Count(context.Background(), fs)
		if err != nil || approx || got != want {
			t.Errorf("count %v: %d (approximate %v), %v; want %d", fs, got, approx, err, want)
		}
	}
	expect(all, 0)
	expect(byK, 0)
	n1 := event(t, k, 1, 100, nil, "one")
	n2 := event(t, k, 1, 101, nil, "two")
	f.save(items(n1, n2, event(t, k, 0, 100, nil, "profile"), event(t, k, 30023, 100, nostr.Tags{{"d", "x"}}, "post")))
	expect(all, 4)
	expect(byK, 4)
	f.saveOne(event(t, k, 0, 200, nil, "new profile"), storage.Stored)
	f.saveOne(event(t, k, 30023, 200, nostr.Tags{{"d", "x"}}, "new post"), storage.Stored)
	expect(all, 4)
	expect(filters(nostr.Filter{Kinds: []int{0}}), 1)
	f.saveOne(deletion(t, k, 300, []string{n1.Event.ID}, nil), storage.Stored)
	expect(all, 4) // one note fewer, one deletion more
	expect(filters(nostr.Filter{Kinds: []int{1}}), 1)
	now := time.Now().Unix()
	f.saveOne(event(t, k, 1, now, nostr.Tags{{"expiration", fmt.Sprint(now - 1)}}, "expired"), storage.Stored)
	expect(all, 4)
	expect(byK, 4)
	if _, err := f.s.DeleteExpired(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	expect(all, 4)
}

// testCountHLL checks the NIP-45 HyperLogLog of engines that offer it
// against the registers computed from the matching events themselves.
func testCountHLL(t *testing.T, f *fixture) {
	hc, ok := f.s.(storage.HLLCounter)
	if !ok {
		t.Skip("engine does not compute HyperLogLog")
	}
	evs, alice, bob, carol := countCorpus(t, f)
	// Many reactors, so that registers fill.
	var batch []storage.Item
	root := evs[0]
	for i := range 60 {
		it := event(t, newKey(t), 7, 2000+int64(i), nostr.Tags{{"e", root.ID}}, "+")
		batch = append(batch, it)
		evs = append(evs, it.Event)
	}
	f.save(batch)
	now := time.Now().Unix()
	byID := map[string]*nostr.Event{}
	for _, ev := range evs {
		byID[ev.ID] = ev
	}
	for i, c := range countCases(evs, alice, bob, carol) {
		for _, offset := range []int{8, 16, 23} {
			t.Run(fmt.Sprint(i, "@", offset), func(t *testing.T) {
				ids := Reference(evs, noLimits(filters(c)), now)
				want := hyperloglog.New(offset)
				for _, id := range ids {
					want.Add(byID[id].PubKey)
				}
				n, approx, hll, err := hc.CountHLL(context.Background(), filters(c), offset)
				if err != nil || approx || n != int64(len(ids)) {
					t.Fatalf("count hll %v: %d (approximate %v), %v; want %d", c, n, approx, err, len(ids))
				}
				if !bytes.Equal(hll, want.GetRegisters()) {
					t.Errorf("hll of %v differs:\n got %x\nwant %x", c, hll, want.GetRegisters())
				}
			})
		}
	}
	if _, _, _, err := hc.CountHLL(context.Background(), filters(nostr.Filter{}), 40); err == nil {
		t.Error("offset 40 accepted")
	}
}

func testCountClosed(t *testing.T, f *fixture) {
	f.close()
	if _, _, err := f.s.Count(context.Background(), filters(nostr.Filter{})); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("count after close: %v", err)
	}
}

func testCountCancelled(t *testing.T, f *fixture) {
	k := newKey(t)
	f.saveOne(event(t, k, 1, 1, nil, "x"), storage.Stored)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := f.s.Count(ctx, filters(nostr.Filter{Kinds: []int{1}})); !errors.Is(err, context.Canceled) {
		t.Errorf("count with a cancelled context: %v", err)
	}
}

// Past the cap, Count stops and says it is approximate; HLL is then left
// out. The fixture's store counts at most 10.
func testCountApproximate(t *testing.T, f *fixture) {
	k := newKey(t)
	target := k.pk
	var batch []storage.Item
	for i := range 15 {
		batch = append(batch, event(t, k, 7, int64(i), nostr.Tags{{"e", target}}, "+"))
	}
	f.save(batch)
	ctx := context.Background()
	for _, c := range []struct {
		fs     []nostr.Filter
		n      int64
		approx bool
	}{
		{filters(nostr.Filter{Kinds: []int{7}}), 10, true},
		{filters(nostr.Filter{Kinds: []int{7}, Since: ts(10)}), 5, false},
		{filters(nostr.Filter{Kinds: []int{7}, Since: ts(10)}, nostr.Filter{Kinds: []int{7}, Until: ts(5)}), 10, true},
		{filters(nostr.Filter{Kinds: []int{7}, Since: ts(10)}, nostr.Filter{Kinds: []int{7}, Until: ts(3)}), 9, false},
		{filters(nostr.Filter{Tags: nostr.TagMap{"e": {target}}, Until: ts(9)}), 10, false},
	} {
		n, approx, err := f.s.Count(ctx, c.fs)
		if err != nil || n != c.n || approx != c.approx {
			t.Errorf("count %v: %d approximate %v (%v); want %d, %v", c.fs, n, approx, err, c.n, c.approx)
		}
	}
	if hc, ok := f.s.(storage.HLLCounter); ok {
		n, approx, hll, err := hc.CountHLL(ctx, filters(nostr.Filter{Kinds: []int{7}, Tags: nostr.TagMap{"e": {target}}}), 8)
		if err != nil || n != 10 || !approx || hll != nil {
			t.Errorf("count hll past the cap: %d %v %x %v", n, approx, hll, err)
		}
	}
}
