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
	// Filters of many authors (some who wrote nothing) with a limit, each
	// matching a few of more events than the limit: a feed, which an
	// engine may read another way (storage/sqlite's probe).
	f.Add([]byte("\x97\x53\xc6\x3f\x05\x3f\x01\x8b\xad\x94\xfd\x68\x42\x36\x8e\x69\x7a\x23\xdc\xf3\xcc\x59\x9a\x92\xbd\x28\x28\xa8\x24\x2a\x3b\x25\xfd\xed\x70\x3b\x64\x18\x0c\x9a\x4b\x10\xc5\x88\x99\xe5\xd8\xd3\xe7\x74\xc2\xb4\xf4\x5c\x68\x90\xa3\xd3\x6a\x63\xe4"))
	f.Add([]byte("\x55\x20\x16\x5b\xba\x2e\x48\xaf\x28\x94\xe3\x46\x67\x82\xa4\xdd\xe9\xdc\x0e\xe9\x48\xd5\x37\x41\x59\x0f\xe9\x1c\x56\xf7\x16\xb0\x1d\xcf\x0e\x17\xf3\x82\x9c\x1c\x92\xdd\xbb\x7e\xae\xa5\x27\xe9\x0c\x71\x8d\x56\x92\xbd\x49\x09\xff\x66\x81\x9c\x64\x7a"))
	f.Add([]byte("\xc5\x93\x38\x56\xec\x49\xd9\x90\x68\xe7\x6c\xef\x47\xbc\xc3\xa1\xcc\xf6\x88\x06\x9c\xb6\xca\xfc\xbc\x93\x49\x3c\xb9\x00\xa5\x24\xcd\xd3\xf2\xa5\xea\xeb\xe2\x8a\x75\xfd\x20\x33\x57\xc5\x76\xfe\x6a\x58\x42\x83\x39\x4a\x7f\xdd"))
	f.Add([]byte("\x16\x06\xd1\xed\x18\xf4\x8b\x87\xeb\x52\x63\xd3\x03\xb6\x72\x24\x5b\x96\x6e\xa8\x58\x31\x0d\x93\x53\x50\x39\xc2\x2a\x92\x2b\x03\xde\xc8\x9f\x0c\xb4\x45\x46\x32\x8c\xb6\x91\x79\x27\x5a\xd5\x34\xd3\x63\x28\x42\xd6\x12\x02\xf7\x12\x60\x51\xbc\xc9\xb0"))
	f.Add([]byte("\x15\x4a\xd2\x4a\x3d\xce\xbf\xa5\xcf\xbd\xac\x3e\x60\xd4\x0f\x02\x01\xd0\xb8\x48\x79\xef\x08\xb2\x90\x2a\x0a\x98\x9e\x3a\x47\x40\x6b\xe8\x64\x75\xdc\x51\x85\x0e\x0a\xc9\xd6\xe6\x21\x88\x42\xdc\x9b\x0e\xfa\x99"))
	f.Add([]byte("\x39\xc7\x16\xfe\x92\x9f\x63\x97\x47\xaa\x83\xcb\x3f\xb9\x44\xc3\xee\xef\x14\xd2\x43\x82\x41\x90\xdb\x10\xc5\x6b\x2a\xdc\xc2\x02\x8b\x15\x43\xb2\xe7\x81\x15\x9d\xa0\xc8\x69\x45\xdc\xd7\x5b\x3e\x6c\x35\x7e\x13\x98\xc2\xc8\x77\x75\xc0\xf7\x2f"))
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

// subsetOf picks the values of pool whose bits (modulo 8) are set.
func subsetOf(pool []string, bits int) []string {
	out := []string{}
	for i, v := range pool {
		if bits&(1<<(i%8)) != 0 {
			out = append(out, v)
		}
	}
	return out
}

// silentAuthors are pubkeys that write none of the fuzz events, as many
// as a feed's follows, so that an authors filter can be long.
func silentAuthors() []string {
	out := make([]string, 24)
	for i := range out {
		out[i] = strings.Repeat(fmt.Sprintf("%02x", 0x40+i), 32)
	}
	return out
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
	subset := func(pool []string) []string { return subsetOf(pool, r.next()) }
	if flags&1 != 0 {
		pool := []string{"zz", strings.ToUpper(evs[0].ID)}
		for _, ev := range evs[:min(len(evs), 6)] {
			pool = append(pool, ev.ID)
		}
		f.IDs = subset(pool)
	}
	if flags&2 != 0 {
		// Bit 4 of the subset's byte, unused by its four choices, adds
		// authors who wrote nothing: an engine may read a filter of many
		// authors another way (a feed of hundreds of follows).
		bits := r.next()
		f.Authors = subsetOf(append(fuzzPubkeys(), "nothex"), bits)
		if bits&16 != 0 {
			f.Authors = append(f.Authors, silentAuthors()...)
		}
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
