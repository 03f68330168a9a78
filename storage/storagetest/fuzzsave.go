package storagetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// FuzzSave is the save differential fuzz, for an engine's own fuzz test
// (func FuzzSave(f *testing.F) { storagetest.FuzzSave(f, open) }): event
// streams built from the fuzz input, with replaceable and addressable
// versions, NIP-09 deletions by id and address (of their own author's
// events and of others'), NIP-62 requests to vanish and gift wraps, cut
// into batches at random, are saved, and each outcome and then what
// queries and counts serve are compared with a naive model of the rules.
func FuzzSave(f *testing.F, open func(t *testing.T, input []byte) storage.Store) {
	for _, seed := range []string{
		"",
		"\x10\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18",
		"\x14\x05\x05\x05\x05\x09\x09\x09\x09\x0d\x0d\x0d\x0d\x11\x11\x11\x11\x15\x15\x15\x15\x19\x19\x19\x19\x1d",
		"\x18\x00\x03\x06\x09\x0c\x0f\x12\x15\x18\x1b\x1e\x21\x24\x27\x2a\x2d\x30\x33\x36\x39\x3c\x3f\x42\x45\x48\x4b\x4e",
		"\x12\x07\x17\x27\x37\x47\x57\x67\x77\x87\x97\xa7\xb7\xc7\xd7\xe7\xf7\x06\x16\x26\x36\x46\x56\x66",
		"\x1f\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0\xef\xee\xed\xec\xeb\xea\xe9\xe8\xe7",
		"\x16\x02\x04\x02\x04\x02\x04\x0b\x0b\x0b\x0b\x01\x01\x01\x01\x08\x08\x08\x08\x0e\x0e\x0e\x0e\x03\x03\x03",
		"\x1c\x31\x41\x59\x26\x53\x58\x97\x93\x23\x84\x62\x64\x33\x83\x27\x95\x02\x88\x41\x97\x16\x93\x99\x37\x51",
		"\x0e\x0a\x1a\x2a\x0a\x1a\x2a\x0a\x1a\x2a\x0a\x1a\x2a\x0a\x1a\x2a\x0a\x1a\x2a\x0a\x1a\x2a",
		"\x1e\x05\x0c\x05\x0c\x05\x0c\x05\x0c\x05\x0c\x05\x0c\x05\x0c\x05\x0c\x05\x0c\x05\x0c\x05\x0c\x05\x0c",
	} {
		f.Add([]byte(seed))
	}
	// And random streams, the same on every run.
	rng := rand.New(rand.NewPCG(7, 8))
	for range 60 {
		seed := make([]byte, 48)
		for i := range seed {
			seed[i] = byte(rng.IntN(256))
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) { SaveStream(t, open(t, data), data) })
}

// SaveStream is one input of FuzzSave, on an empty store s.
func SaveStream(t *testing.T, s storage.Store, data []byte) {
	t.Helper()
	{
		r := &fuzzReader{b: data}
		evs, cuts := fuzzStream(r)
		m := newModel()
		ctx := context.Background()
		var log strings.Builder
		for start := 0; start < len(evs); {
			end := min(len(evs), start+1+cuts[start])
			batch := evs[start:end]
			items := make([]storage.Item, len(batch))
			for i, ev := range batch {
				raw, err := ev.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				items[i] = storage.Item{Event: ev, Raw: raw}
			}
			res, err := s.Save(ctx, items)
			if err != nil {
				t.Fatalf("save: %v", err)
			}
			for i, ev := range batch {
				want := m.save(ev)
				fmt.Fprintf(&log, "  batch@%d %s kind %d at %d by %s tags %v: %v\n", start, ev.ID[:8], ev.Kind, ev.CreatedAt, ev.PubKey[:4], ev.Tags, want)
				if res[i].Outcome != want {
					t.Fatalf("event %d: outcome %v, model %v\n%s", start+i, res[i].Outcome, want, log.String())
				}
			}
			start = end
		}
		now := time.Now().Unix()
		stored := m.stored()
		feed := append(fuzzPubkeys()[:2], silentAuthors()...)
		for _, flt := range []nostr.Filter{
			{}, {Kinds: []int{1, 5, 62, 1059}}, {Kinds: []int{0, 30023}}, {Authors: fuzzPubkeys()[:1]},
			{Tags: nostr.TagMap{"p": fuzzPubkeys()}}, {Tags: nostr.TagMap{"d": {"a", "b", ""}}},
			// A feed: many authors, a limit.
			{Authors: feed, Limit: 3}, {Authors: feed, Kinds: []int{1, 7, 30023}, Limit: 2},
		} {
			want := Reference(stored, filters(flt), now)
			got := queryIDs(t, s, flt)
			if !slices.Equal(got, want) {
				t.Fatalf("filter %v\n got %v\nwant %v\nevents:\n%s", flt, abbrev(got), abbrev(want), log.String())
			}
			// A count counts all matches, whatever the limit.
			unlimited := flt
			unlimited.Limit = 0
			wantN := len(Reference(stored, filters(unlimited), now))
			if n, _, err := s.Count(ctx, filters(flt)); err != nil || n != int64(wantN) {
				t.Fatalf("count %v: %d, %v; want %d\n%s", flt, n, err, wantN, log.String())
			}
		}
	}
}

// fuzzStream builds up to 24 events: notes, replaceable and addressable
// versions with colliding created_at, deletions naming earlier events and
// addresses (some of other authors, some malformed), requests to vanish and
// gift wraps; cuts[i] is how many events follow event i in its batch.
func fuzzStream(r *fuzzReader) (evs []*nostr.Event, cuts []int) {
	pks := fuzzPubkeys()
	n := 1 + r.pick(24)
	for i := range n {
		ev := &nostr.Event{
			PubKey:    pks[r.pick(len(pks))],
			CreatedAt: nostr.Timestamp(1000 + r.pick(6)),
			Content:   fmt.Sprint(i), // distinct ids
			Tags:      nostr.Tags{},
		}
		switch x := r.pick(16); {
		case x < 3:
			ev.Kind = 1
			if r.pick(2) == 0 {
				ev.Tags = append(ev.Tags, nostr.Tag{"p", pks[r.pick(len(pks))]})
			}
		case x < 5:
			ev.Kind = []int{0, 10002}[r.pick(2)]
		case x < 8:
			ev.Kind = 30023
			if d := r.pick(4); d < 3 {
				ev.Tags = append(ev.Tags, nostr.Tag{"d", []string{"a", "b", ""}[d]})
			}
		case x < 12:
			ev.Kind = 5
			for range 1 + r.pick(3) {
				switch y := r.pick(5); {
				case y < 2 && len(evs) > 0: // mostly a recent event: in the same batch
					ev.Tags = append(ev.Tags, nostr.Tag{"e", evs[len(evs)-1-r.pick(min(len(evs), 3+r.pick(2)*20))].ID})
				case y < 4:
					kind := []int{30023, 0, 10002, 1}[r.pick(4)]
					pk := ev.PubKey
					if r.pick(4) == 0 {
						pk = pks[r.pick(len(pks))]
					}
					ev.Tags = append(ev.Tags, nostr.Tag{"a", fmt.Sprintf("%d:%s:%s", kind, pk, []string{"a", "b", ""}[r.pick(3)])})
				default:
					ev.Tags = append(ev.Tags, nostr.Tag{[]string{"e", "a"}[r.pick(2)], []string{"zz", "30023:x", strings.ToUpper(pks[0])}[r.pick(3)]})
				}
			}
		case x < 13:
			ev.Kind = 62
			ev.Tags = append(ev.Tags, nostr.Tag{"relay", "ALL_RELAYS"})
		case x < 15:
			ev.Kind = 1059
			ev.Tags = append(ev.Tags, nostr.Tag{"p", pks[r.pick(len(pks))]})
		default:
			ev.Kind = 7
			if len(evs) > 0 {
				ev.Tags = append(ev.Tags, nostr.Tag{"e", evs[r.pick(len(evs))].ID})
			}
		}
		ev.ID = ev.GetID()
		evs = append(evs, ev)
		// A re-sent earlier event now and then.
		if len(evs) > 1 && r.pick(6) == 0 {
			evs = append(evs, evs[r.pick(len(evs)-1)])
		}
	}
	cuts = make([]int, len(evs))
	for i := range cuts {
		cuts[i] = r.pick(8)
	}
	return evs, cuts
}
