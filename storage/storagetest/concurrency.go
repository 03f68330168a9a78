package storagetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// Two stores on one database, as two relay processes sharing it, and
// queries while saves run.

// A query sees exactly the events up to its watermark while two stores
// write: with only regular events, sequence numbers have no gaps, so the
// count equals the watermark.
func testSnapshotUnderWrites(t *testing.T, f *fixture) {
	other := f.open(Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w, s := range []storage.Store{f.s, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := newKey(t)
			for b := range 20 {
				batch := make([]storage.Item, 10)
				for i := range batch {
					batch[i] = event(t, k, []int{1, 7}[i%2], int64(b), nil, fmt.Sprint(w, b, i))
				}
				if _, err := s.Save(ctx, batch); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	for i := 0; ; i++ {
		select {
		case <-done:
			return
		default:
		}
		n := 0
		wm, err := f.s.Query(ctx, filters(nostr.Filter{Kinds: []int{1}}, nostr.Filter{Kinds: []int{7}}), func([]byte) error { n++; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if int64(n) != wm {
			t.Fatalf("query %d: %d events with watermark %d", i, n, wm)
		}
	}
}

// Two stores saving versions of the same addresses at once leave the right
// winner (the newest, the lowest id on a tie) and no second version, and a
// deletion racing with the events it deletes wins whichever comes first.
func testTwoStoresRaceOnAddress(t *testing.T, f *fixture) {
	other := f.open(Options{})
	stores := []storage.Store{f.s, other}
	ctx := context.Background()
	k := newKey(t)
	const rounds = 15
	var all [][]storage.Item // per round, per store: a batch
	for r := range rounds {
		for w := range stores {
			var batch []storage.Item
			for i := range 4 {
				at := int64(100 + (r*7+w*3+i)%5) // ties across stores
				batch = append(batch,
					event(t, k, 0, at, nil, fmt.Sprint("profile ", r, w, i)),
					event(t, k, 30000, at, nostr.Tags{{"d", "list"}}, fmt.Sprint("list ", r, w, i)),
					event(t, k, 1, at, nil, fmt.Sprint("note ", r, w, i)))
			}
			all = append(all, batch)
		}
	}
	var mu sync.Mutex
	stored := map[string]bool{}
	for r := range rounds {
		var wg sync.WaitGroup
		for w, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				batch := all[r*len(stores)+w]
				res, err := s.Save(ctx, batch)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for i, re := range res {
					if re.Outcome == storage.Stored {
						stored[batch[i].Event.ID] = true
					}
				}
			}()
		}
		wg.Wait()
	}
	winner := func(kind int) string {
		var best *nostr.Event
		for _, batch := range all {
			for _, it := range batch {
				ev := it.Event
				if ev.Kind == kind && (best == nil || ev.CreatedAt > best.CreatedAt || ev.CreatedAt == best.CreatedAt && ev.ID < best.ID) {
					best = ev
				}
			}
		}
		return best.ID
	}
	for _, kind := range []int{0, 30000} {
		for _, s := range stores {
			got := queryIDs(t, s, nostr.Filter{Authors: []string{k.pk}, Kinds: []int{kind}})
			if want := winner(kind); !slices.Equal(got, []string{want}) || !stored[want] {
				t.Errorf("kind %d: stored %v, want only %s (stored %v)", kind, short(got), want[:8], stored[want])
			}
		}
	}
	if n, _, err := f.s.Count(ctx, filters(nostr.Filter{Kinds: []int{1}})); err != nil || n != rounds*2*4 {
		t.Errorf("notes: %d, %v", n, err)
	}

	// Deletions against the events they name, from the other store at the
	// same time: the events are gone either way, and refused after.
	var notes, dels []storage.Item
	for i := range 20 {
		n := event(t, k, 1, 500, nil, fmt.Sprint("doomed ", i))
		notes = append(notes, n)
		dels = append(dels, deletion(t, k, 600, []string{n.Event.ID}, nil))
	}
	var wg sync.WaitGroup
	for i := range notes {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := stores[0].Save(ctx, notes[i:i+1]); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := stores[1].Save(ctx, dels[i:i+1]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, n := range notes {
		if f.has(n.Event.ID) {
			t.Errorf("%s survived its deletion", n.Event.ID[:8])
		}
	}
	f.save(notes, slices.Repeat([]storage.Outcome{storage.Deleted}, len(notes))...)
}
