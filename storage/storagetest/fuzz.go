package storagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// FuzzQuery is the query differential fuzz, for an engine's own fuzz test
// (func FuzzQuery(f *testing.F) { storagetest.FuzzQuery(f, open) }) with
// open returning a new, empty store that is closed when t ends; it may vary
// the store's settings (how it reads, say) with the fuzz input. It
// compares Query with a reference (go-nostr's Filter.Matches, then order
// and limit) on small event sets built from the fuzz input: few authors,
// kinds and tag values, and many created_at collisions, so that ties,
// replacement and tag matching are exercised. The store does not verify
// signatures, so events are only hashed.
func FuzzQuery(f *testing.F, open func(t *testing.T, input []byte) storage.Store) {
	f.Add([]byte{})
	f.Add([]byte("\x05\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\xff\x10\x20"))
	f.Add([]byte("\x0f\x13\x27\x31\x44\x52\x63\x70\x81\x92\xa3\xb4\xc5\xd6\xe7\xf8\x09\x1a\x2b\x3c\x4d\x5e\x6f"))
	f.Add([]byte("\x08\x01\x01\x01\x03\x01\x02\x03\x04\x02\x01\x00\x03\x03\x08\x08\x01\x01\x01\x01\x01\x48\x03\x05"))
	f.Add([]byte("\x0c\x02\x03\x04\x02\x02\x02\x05\x01\x00\x00\x00\x02\x09\x09\x09\x01\x0f\x0f\x0f\x0f\x04\x01\x02"))
	f.Add([]byte("\x0a\x00\x03\x00\x03\x00\x03\x01\x02\x01\x02\x01\x02\x00\x01\x00\x01\x5c\x02\x01\x03\x02\x01"))
	f.Add([]byte("\x10\xfe\xdc\xba\x98\x76\x54\x32\x10\x0f\x1e\x2d\x3c\x4b\x5a\x69\x78\x87\x96\xa5\xb4\xc3\xd2\xe1\xf0\x60\x77"))
	f.Add([]byte("\x06\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\x03\xc8\x02\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzReader{b: data}
		evs := fuzzEvents(r)
		filters := []nostr.Filter{fuzzFilter(r, evs)}
		if r.next()%3 == 0 {
			filters = append(filters, fuzzFilter(r, evs))
		}

		s := open(t, data)
		items := make([]storage.Item, len(evs))
		for i, ev := range evs {
			raw, err := ev.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			items[i] = storage.Item{Event: ev, Raw: raw}
		}
		if _, err := s.Save(context.Background(), items); err != nil {
			t.Fatalf("save: %v", err)
		}

		now := time.Now().Unix()
		want := Reference(survivors(evs), filters, now)
		var got []string
		if _, err := s.Query(context.Background(), filters, func(raw []byte) error {
			var ev struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(raw, &ev); err != nil {
				return err
			}
			got = append(got, ev.ID)
			return nil
		}); err != nil {
			t.Fatalf("query: %v", err)
		}
		if !slices.Equal(got, want) {
			var b strings.Builder
			for _, ev := range evs {
				fmt.Fprintf(&b, "  %s kind %d at %d by %s tags %v\n", ev.ID[:8], ev.Kind, ev.CreatedAt, ev.PubKey[:4], ev.Tags)
			}
			t.Fatalf("filters %v\n got %v\nwant %v\nevents:\n%s", filters, abbrev(got), abbrev(want), b.String())
		}
	})
}

// fuzzReader hands out the fuzz input a byte at a time, then zeros.
type fuzzReader struct {
	b []byte
	i int
}

func (r *fuzzReader) next() int {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return int(r.b[r.i-1])
}

func (r *fuzzReader) pick(n int) int { return r.next() % n }

func fuzzPubkeys() []string {
	return []string{strings.Repeat("1a", 32), strings.Repeat("2b", 32), strings.Repeat("3c", 32)}
}

func fuzzEvents(r *fuzzReader) []*nostr.Event {
	pks := fuzzPubkeys()
	kinds := []int{1, 7, 1, 0, 30023, 10002, 30023}
	names := []string{"e", "p", "t", "d", "t", "T", "client", "expiration", "e"}
	values := []string{"a", "b", "", pks[0], pks[1], "A"}
	n := 1 + r.pick(16)
	evs := make([]*nostr.Event, n)
	for i := range evs {
		ev := &nostr.Event{
			PubKey:    pks[r.pick(len(pks))],
			Kind:      kinds[r.pick(len(kinds))],
			CreatedAt: nostr.Timestamp(1000 + r.pick(5)),
			Content:   fmt.Sprint(i), // distinct ids
			Tags:      nostr.Tags{},
		}
		for range r.pick(4) {
			name := names[r.pick(len(names))]
			switch {
			case name == "expiration":
				ev.Tags = append(ev.Tags, nostr.Tag{name, []string{"1", "99999999999", "x"}[r.pick(3)]})
			case r.pick(8) == 0:
				ev.Tags = append(ev.Tags, nostr.Tag{name}) // no value
			default:
				ev.Tags = append(ev.Tags, nostr.Tag{name, values[r.pick(len(values))], "extra"})
			}
		}
		ev.ID = ev.GetID()
		evs[i] = ev
	}
	return evs
}

// fuzzFilter builds a filter over evs; each field is absent, empty, or a
// subset of plausible values (with some that match nothing).
func fuzzFilter(r *fuzzReader, evs []*nostr.Event) nostr.Filter {
	var f nostr.Filter
	flags := r.next() | r.next()<<8
	subset := func(pool []string) []string {
		out := []string{}
		bits := r.next()
		for i, v := range pool {
			if bits&(1<<(i%8)) != 0 {
				out = append(out, v)
			}
		}
		return out
	}
	if flags&1 != 0 {
		pool := []string{"zz", strings.ToUpper(evs[0].ID)}
		for _, ev := range evs[:min(len(evs), 6)] {
			pool = append(pool, ev.ID)
		}
		f.IDs = subset(pool)
	}
	if flags&2 != 0 {
		f.Authors = subset(append(fuzzPubkeys(), "nothex"))
	}
	if flags&4 != 0 {
		f.Kinds = []int{}
		for _, k := range []int{1, 7, 0, 30023, 10002, 5} {
			if r.pick(3) == 0 {
				f.Kinds = append(f.Kinds, k)
			}
		}
	}
	if flags&8 != 0 {
		f.Tags = nostr.TagMap{}
		names := []string{"e", "p", "t", "d", "T", "client"}
		values := append([]string{"a", "b", "", "A", "c"}, fuzzPubkeys()[:2]...)
		for range 1 + r.pick(2) {
			name := names[r.pick(len(names))]
			if r.pick(6) == 0 {
				f.Tags[name] = nil
			} else {
				f.Tags[name] = subset(values)
			}
		}
	}
	if flags&16 != 0 {
		v := nostr.Timestamp(999 + r.pick(7))
		f.Since = &v
	}
	if flags&32 != 0 {
		v := nostr.Timestamp(999 + r.pick(7))
		f.Until = &v
	}
	if flags&64 != 0 {
		f.Limit = r.pick(6)
		f.LimitZero = f.Limit == 0
	}
	if flags&128 != 0 && flags&256 != 0 {
		f.Search = "x"
	}
	return f
}

// survivors is what the store keeps of evs saved in order, none of them a
// deletion: every regular event, and the winner of each address (the newest,
// the lowest id on a tie).
func survivors(evs []*nostr.Event) []*nostr.Event {
	type address struct {
		pubkey string
		kind   int
		d      string
	}
	var out []*nostr.Event
	current := make(map[address]*nostr.Event)
	for _, ev := range evs {
		var a address
		switch {
		case nostr.IsReplaceableKind(ev.Kind):
			a = address{ev.PubKey, ev.Kind, ""}
		case nostr.IsAddressableKind(ev.Kind):
			a = address{ev.PubKey, ev.Kind, ev.Tags.GetD()}
		default:
			out = append(out, ev)
			continue
		}
		old, ok := current[a]
		if !ok || ev.CreatedAt > old.CreatedAt || (ev.CreatedAt == old.CreatedAt && ev.ID < old.ID) {
			current[a] = ev
		}
	}
	for _, ev := range current {
		out = append(out, ev)
	}
	return out
}

func abbrev(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id[:8]
	}
	return out
}
