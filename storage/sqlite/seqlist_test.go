package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

func TestEventsAfter(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	if seq, err := s.LastSeq(ctx); err != nil || seq != 0 {
		t.Fatalf("empty store: LastSeq %d, %v", seq, err)
	}
	k := newTestKey(t)
	now := time.Now().Unix()
	var evs []*nostr.Event
	for i := range 5 {
		evs = append(evs, k.event(t, 1, now-int64(i), fmt.Sprintf("n%d", i)))
	}
	expired := k.event(t, 1, now, "gone", nostr.Tag{"expiration", fmt.Sprint(now - 1)})
	res := saveAll(t, s, append(evs, expired)...)
	last, err := s.LastSeq(ctx)
	if err != nil || last != res[len(res)-1].Seq {
		t.Fatalf("LastSeq %d, %v; want %d", last, err, res[len(res)-1].Seq)
	}
	list := func(after int64, limit int) (ids []string, seqs []int64) {
		t.Helper()
		err := s.EventsAfter(ctx, after, limit, func(seq int64, raw []byte) error {
			var ev nostr.Event
			if err := json.Unmarshal(raw, &ev); err != nil {
				return err
			}
			ids, seqs = append(ids, ev.ID), append(seqs, seq)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return ids, seqs
	}
	ids, seqs := list(0, 100)
	if len(ids) != 5 {
		t.Fatalf("got %d events, want the 5 unexpired ones", len(ids))
	}
	for i := range ids {
		if ids[i] != evs[i].ID || seqs[i] != res[i].Seq {
			t.Fatalf("event %d: %s seq %d, want %s seq %d (store order)", i, ids[i], seqs[i], evs[i].ID, res[i].Seq)
		}
	}
	ids, _ = list(res[1].Seq, 2)
	if len(ids) != 2 || ids[0] != evs[2].ID || ids[1] != evs[3].ID {
		t.Fatalf("page after seq %d: %v", res[1].Seq, ids)
	}
	if ids, _ = list(last, 10); len(ids) != 0 {
		t.Fatalf("after the last seq: %v", ids)
	}
}
