package storagetest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// Listing ids for negentropy (storage.IDLister) and events by sequence
// number (storage.SeqLister).

func testListIDs(t *testing.T, f *fixture) {
	l, ok := f.s.(storage.IDLister)
	if !ok {
		t.Skip("engine does not list ids")
	}
	a, b := newKey(t), newKey(t)
	now := time.Now().Unix()
	var aNotes, bReactions []storage.Item
	for i := range 5 {
		aNotes = append(aNotes, event(t, a, 1, 1000+int64(i), nil, fmt.Sprint(i)))
	}
	for i := range 3 {
		bReactions = append(bReactions, event(t, b, 7, 2000+int64(i), nostr.Tags{{"e", aNotes[0].Event.ID}}, "+"))
	}
	expired := event(t, a, 1, 1010, nostr.Tags{{"expiration", fmt.Sprint(now - 1)}}, "gone")
	f.save(append(append(aNotes, bReactions...), expired))

	list := func(max int, fs ...nostr.Filter) (map[string]int64, error) {
		t.Helper()
		got := map[string]int64{}
		err := l.ListIDs(context.Background(), fs, max, func(createdAt int64, id []byte) error {
			h := hex.EncodeToString(id)
			if _, dup := got[h]; dup {
				t.Errorf("%s listed twice", h)
			}
			got[h] = createdAt
			return nil
		})
		return got, err
	}
	want := func(its ...storage.Item) map[string]int64 {
		m := map[string]int64{}
		for _, it := range its {
			m[it.Event.ID] = int64(it.Event.CreatedAt)
		}
		return m
	}
	check := func(got map[string]int64, err error, want map[string]int64) {
		t.Helper()
		if err != nil || len(got) != len(want) {
			t.Errorf("listed %d, %v; want %d", len(got), err, len(want))
			return
		}
		for id, at := range want {
			if got[id] != at {
				t.Errorf("%s: created_at %d, want %d", id[:8], got[id], at)
			}
		}
	}
	got, err := list(0, nostr.Filter{Authors: []string{a.pk}, Limit: 1}) // limits are ignored, expired events left out
	check(got, err, want(aNotes...))
	got, err = list(0, nostr.Filter{Kinds: []int{7}}, nostr.Filter{Tags: nostr.TagMap{"e": {aNotes[0].Event.ID}}}, nostr.Filter{Kinds: []int{}})
	check(got, err, want(bReactions...))
	got, err = list(8, nostr.Filter{})
	check(got, err, want(append(aNotes, bReactions...)...))
	if _, err := list(7, nostr.Filter{}); !errors.Is(err, storage.ErrTooMany) {
		t.Errorf("past max: %v, want ErrTooMany", err)
	}
	if got, err := list(0); len(got) != 0 || err != nil {
		t.Errorf("no filters: %d, %v", len(got), err)
	}
	stop := errors.New("stop")
	calls := 0
	if err := l.ListIDs(context.Background(), filters(nostr.Filter{}), 0, func(int64, []byte) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("callback error: %v after %d calls", err, calls)
	}
}

func testEventsAfter(t *testing.T, f *fixture) {
	sl, ok := f.s.(storage.SeqLister)
	if !ok {
		t.Skip("engine does not list by sequence")
	}
	ctx := context.Background()
	if seq, err := sl.LastSeq(ctx); err != nil || seq != 0 {
		t.Fatalf("empty store: LastSeq %d, %v", seq, err)
	}
	k := newKey(t)
	now := time.Now().Unix()
	var its []storage.Item
	for i := range 5 {
		its = append(its, event(t, k, 1, now-int64(i), nil, fmt.Sprintf("n%d", i)))
	}
	its = append(its, event(t, k, 1, now, nostr.Tags{{"expiration", fmt.Sprint(now - 1)}}, "gone"))
	res := f.save(its)
	last, err := sl.LastSeq(ctx)
	if err != nil || last != res[len(res)-1].Seq {
		t.Fatalf("LastSeq %d, %v; want %d", last, err, res[len(res)-1].Seq)
	}
	list := func(after int64, limit int) (ids []string, seqs []int64) {
		t.Helper()
		err := sl.EventsAfter(ctx, after, limit, func(seq int64, raw []byte) error {
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
		if ids[i] != its[i].Event.ID || seqs[i] != res[i].Seq {
			t.Fatalf("event %d: %s seq %d, want %s seq %d (store order)", i, ids[i], seqs[i], its[i].Event.ID, res[i].Seq)
		}
	}
	ids, _ = list(res[1].Seq, 2)
	if len(ids) != 2 || ids[0] != its[2].Event.ID || ids[1] != its[3].Event.ID {
		t.Fatalf("page after seq %d: %v", res[1].Seq, ids)
	}
	if ids, _ = list(last, 10); len(ids) != 0 {
		t.Fatalf("after the last seq: %v", ids)
	}
	if ids, _ = list(0, 0); len(ids) != 0 {
		t.Fatalf("limit 0: %v", ids)
	}
	// A deleted event leaves a gap; LastSeq still counts it.
	f.saveOne(deletion(t, k, now+1, []string{its[4].Event.ID}, nil), storage.Stored)
	if err := sl.EventsAfter(ctx, res[3].Seq, 1, func(seq int64, raw []byte) error {
		if seq <= res[4].Seq {
			t.Errorf("deleted event still listed at seq %d", seq)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if last2, err := sl.LastSeq(ctx); err != nil || last2 <= last {
		t.Errorf("LastSeq %d after %d", last2, last)
	}
}
