package sqlite

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// A query cut short by its deadline says so, and leaves no connection of
// the pool inside its transaction: later queries see later events.
func TestQueryDeadlineLeavesPoolFresh(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	c := newCorpus(50)
	for range 8 {
		batch := make([]storage.Item, 500)
		for i := range batch {
			batch[i] = c.item()
		}
		if _, err := s.Save(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	all := []nostr.Filter{{Limit: 5000}, {Kinds: []int{1, 7}, Limit: 5000}}
	timedOut := 0
	for i := range 40 {
		qctx, cancel := context.WithTimeout(ctx, time.Duration(i*i)*20*time.Microsecond)
		_, err := s.Query(qctx, all, func([]byte) error { return nil })
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("deadline %d: error %v, want one that is context.DeadlineExceeded", i, err)
			}
			timedOut++
		}
		// Every pooled connection must see an event saved now.
		fresh := c.item()
		if _, err := s.Save(ctx, []storage.Item{fresh}); err != nil {
			t.Fatal(err)
		}
		for range 3 { // more than the pool's connections
			n := 0
			if _, err := s.Query(ctx, []nostr.Filter{{IDs: []string{fresh.Event.ID}}}, func([]byte) error { n++; return nil }); err != nil || n != 1 {
				t.Fatalf("after deadline %d: the event just saved found %d times (%v)", i, n, err)
			}
		}
	}
	if timedOut == 0 {
		t.Fatal("no query ran out of time: the test tested nothing")
	}
	t.Logf("%d of 40 queries ran out of time", timedOut)
}
