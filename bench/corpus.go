package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// corpusFormat names the cache file layout and the generator. Bump it when
// generation changes, so that an old cache is not taken for the new corpus.
const corpusFormat = "wisp-bench-corpus/1"

// corpusSpan is how far back from CorpusSpec.Until the events are spread.
const corpusSpan = 30 * 24 * time.Hour

// CorpusSpec determines a corpus completely: the same spec always gives the
// same events (ids, authors, contents, tags and times).
type CorpusSpec struct {
	Seed   uint64
	Events int
	Keys   int
	// Until is the end of the corpus' 30 days, in Unix seconds. The command
	// line uses the start of the current UTC day, so that a corpus is
	// "the last 30 days" yet stays the same, and cached, all day.
	Until int64
}

func (s CorpusSpec) validate() error {
	switch {
	case s.Events < 1:
		return fmt.Errorf("corpus needs at least 1 event, got %d", s.Events)
	case s.Keys < 1:
		return fmt.Errorf("corpus needs at least 1 key, got %d", s.Keys)
	case s.Until <= int64(corpusSpan/time.Second):
		return fmt.Errorf("corpus end %d is not a plausible Unix time", s.Until)
	}
	return nil
}

// fileName is the cache file of this spec inside the corpus directory.
func (s CorpusSpec) fileName() string {
	return fmt.Sprintf("corpus-v1-seed%d-events%d-keys%d-until%d.jsonl", s.Seed, s.Events, s.Keys, s.Until)
}

// Corpus is the signed events, oldest first, with indexes the query mix and
// the correctness checker use.
type Corpus struct {
	Spec    CorpusSpec
	Events  []*nostr.Event // ascending created_at
	Pubkeys []string       // the corpus' authors, by key number
	// msgs[i] is the ready-to-send ["EVENT",<event>] message of Events[i].
	msgs [][]byte
	byID map[string]int
}

func (c *Corpus) index(id string) (int, bool) {
	i, ok := c.byID[id]
	return i, ok
}

// kindCounts is how many events of each kind the corpus holds.
func (c *Corpus) kindCounts() map[int]int {
	m := map[int]int{}
	for _, ev := range c.Events {
		m[ev.Kind]++
	}
	return m
}

// hashtags is the corpus' `t` vocabulary; earlier entries are more popular.
func hashtags() []string {
	return []string{
		"nostr", "bitcoin", "zaps", "grownostr", "photography", "music", "art", "dev",
		"golang", "rust", "linux", "privacy", "books", "coffee", "running", "travel",
		"food", "memes", "science", "history", "gardening", "chess", "cycling", "cats",
		"dogs", "movies", "poetry", "math", "space", "climbing", "jazz", "sqlite",
	}
}

// words make up note contents; their choice does not matter, only sizes do.
func words() []string {
	return []string{
		"relay", "event", "signal", "note", "thread", "garden", "river", "stone", "light",
		"paper", "window", "market", "winter", "orbit", "lattice", "engine", "harbor",
		"silver", "meadow", "pocket", "ticket", "canvas", "signal", "copper", "little",
		"quiet", "bright", "simple", "honest", "rapid", "gentle", "steady", "open",
		"the", "a", "of", "and", "to", "in", "is", "it", "that", "for", "on", "with",
	}
}

// secp256k1N is the order of the curve; a secret key must be in [1, N-1].
const secp256k1N = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"

// secretKey derives key number i of the corpus from the seed. label keeps
// the corpus' keys apart from others (the fan-out publisher's).
func secretKey(seed uint64, label string, i int) string {
	var buf []byte
	buf = append(buf, "wisp-bench "...)
	buf = append(buf, label...)
	buf = binary.LittleEndian.AppendUint64(buf, seed)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(i))
	for {
		h := sha256.Sum256(buf)
		sk := hex.EncodeToString(h[:])
		// Hex strings of equal length compare like the numbers they spell.
		if sk < secp256k1N && strings.Trim(sk, "0") != "" {
			return sk
		}
		buf = h[:] // out of range (odds about 2^-128): hash again
	}
}

// LoadCorpus returns the corpus of spec, from its cache file in dir when
// that is present and intact, otherwise by generating and signing it and
// then writing the cache. cached reports whether the cache was used. An
// empty dir means no cache.
func LoadCorpus(ctx context.Context, spec CorpusSpec, dir string) (c *Corpus, cached bool, err error) {
	if err := spec.validate(); err != nil {
		return nil, false, err
	}
	var path string
	if dir != "" {
		path = filepath.Join(dir, spec.fileName())
		c, err := readCorpus(path, spec)
		if err == nil {
			return c, true, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			// A damaged or stale cache is rebuilt rather than trusted.
			_ = os.Remove(path)
		}
	}
	c, err = GenerateCorpus(ctx, spec)
	if err != nil {
		return nil, false, err
	}
	if path != "" {
		if err := writeCorpus(path, c); err != nil {
			return nil, false, fmt.Errorf("cache corpus: %w", err)
		}
	}
	return c, false, nil
}

// plan is one event before signing: who writes it, when, and what kind.
type plan struct {
	kind   int
	author int
	at     int64
}

// GenerateCorpus builds and signs the corpus of spec. The composition, for
// the default 20,000 events and 500 keys: one kind 0 and one kind 3 per key
// (so no replaceable event replaces another, and every relay must keep
// all of them), 10 % kind 7 reactions, 3 % kind 30023 articles with unique
// `d` tags, and the rest kind 1 notes of 100–600 bytes with `e`, `p` and
// `t` tags, spread over the 30 days before spec.Until.
func GenerateCorpus(ctx context.Context, spec CorpusSpec) (*Corpus, error) {
	return generateCorpus(ctx, spec, true)
}

// generateCorpus is GenerateCorpus; without sign the events have ids but
// no signatures, which is all the query mix and the checker look at.
func generateCorpus(ctx context.Context, spec CorpusSpec, sign bool) (*Corpus, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15))
	n := spec.Events

	sks := make([]string, spec.Keys)
	pks := make([]string, spec.Keys)
	for i := range sks {
		sks[i] = secretKey(spec.Seed, "key", i)
		pk, err := nostr.GetPublicKey(sks[i])
		if err != nil {
			return nil, fmt.Errorf("derive key %d: %w", i, err)
		}
		pks[i] = pk
	}

	// The kinds first, so that each key gets at most one kind 0 and 3.
	n0 := min(spec.Keys, n/20)
	n3 := min(spec.Keys, n/20)
	n30023 := n * 3 / 100
	n7 := n / 10
	plans := make([]plan, 0, n)
	for i := range n0 {
		plans = append(plans, plan{kind: 0, author: i})
	}
	for i := range n3 {
		plans = append(plans, plan{kind: 3, author: i})
	}
	for range n30023 {
		plans = append(plans, plan{kind: 30023, author: rng.IntN(spec.Keys)})
	}
	for range n7 {
		plans = append(plans, plan{kind: 7, author: rng.IntN(spec.Keys)})
	}
	for len(plans) < n {
		// Notes: a few authors write most of them, as on real relays.
		plans = append(plans, plan{kind: 1, author: skewed(rng, spec.Keys)})
	}
	rng.Shuffle(len(plans), func(i, j int) { plans[i], plans[j] = plans[j], plans[i] })
	span := int64(corpusSpan / time.Second)
	times := make([]int64, n)
	for i := range times {
		times[i] = spec.Until - span + rng.Int64N(span)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	for i := range plans {
		plans[i].at = times[i]
	}

	// Then the events in time order, so that replies and reactions point at
	// earlier events. Ids depend only on the content, so they are known
	// before signing.
	tags, ws := hashtags(), words()
	events := make([]*nostr.Event, n)
	for i, p := range plans {
		ev := &nostr.Event{
			PubKey:    pks[p.author],
			CreatedAt: nostr.Timestamp(p.at),
			Kind:      p.kind,
			Tags:      nostr.Tags{},
		}
		pickEarlier := func() *nostr.Event {
			if i == 0 {
				return nil
			}
			return events[rng.IntN(i)]
		}
		switch p.kind {
		case 0:
			ev.Content = fmt.Sprintf(`{"name":"bench-%d","about":%q,"picture":"https://example.com/%d.png"}`,
				p.author, text(rng, ws, 40+rng.IntN(120)), p.author)
		case 3:
			follows := min(spec.Keys-1, 10+rng.IntN(140))
			for _, k := range rng.Perm(spec.Keys)[:follows+1] {
				if k != p.author && len(ev.Tags) < follows {
					ev.Tags = append(ev.Tags, nostr.Tag{"p", pks[k]})
				}
			}
		case 7:
			ev.Content = "+"
			if t := pickEarlier(); t != nil {
				ev.Tags = append(ev.Tags, nostr.Tag{"e", t.ID}, nostr.Tag{"p", t.PubKey})
			}
		case 30023:
			ev.Tags = append(ev.Tags,
				nostr.Tag{"d", fmt.Sprintf("article-%d", i)},
				nostr.Tag{"title", text(rng, ws, 20+rng.IntN(40))},
				nostr.Tag{"published_at", fmt.Sprint(p.at)})
			for range 1 + rng.IntN(3) {
				ev.Tags = append(ev.Tags, nostr.Tag{"t", tags[skewed(rng, len(tags))]})
			}
			ev.Content = text(rng, ws, 600+rng.IntN(1400))
		default: // 1
			if rng.IntN(10) < 4 {
				if t := pickEarlier(); t != nil {
					ev.Tags = append(ev.Tags, nostr.Tag{"e", t.ID, "", "reply"}, nostr.Tag{"p", t.PubKey})
				}
			}
			if rng.IntN(10) < 3 {
				for range 1 + rng.IntN(3) {
					ev.Tags = append(ev.Tags, nostr.Tag{"p", pks[rng.IntN(spec.Keys)]})
				}
			}
			if rng.IntN(10) < 5 {
				for range 1 + rng.IntN(3) {
					ev.Tags = append(ev.Tags, nostr.Tag{"t", tags[skewed(rng, len(tags))]})
				}
			}
			ev.Content = text(rng, ws, 100+rng.IntN(501))
		}
		ev.ID = ev.GetID()
		events[i] = ev
	}

	if sign {
		if err := signAll(ctx, events, func(i int) string { return sks[plans[i].author] }); err != nil {
			return nil, err
		}
	}
	return newCorpus(spec, events, pks)
}

// skewed picks an index in [0, n) with small indexes much more likely.
func skewed(rng *rand.Rand, n int) int {
	u := rng.Float64()
	return min(n-1, int(float64(n)*u*u*u))
}

// text is about size bytes of words.
func text(rng *rand.Rand, ws []string, size int) string {
	var b strings.Builder
	for b.Len() < size {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(ws[rng.IntN(len(ws))])
	}
	return b.String()[:size]
}

// signAll signs each event i with the secret key keyOf(i), on every CPU:
// signing is the slow part of building a corpus. An event's id must not
// change, since other events may already refer to it.
func signAll(ctx context.Context, events []*nostr.Event, keyOf func(int) string) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				ev := events[i]
				id := ev.ID
				err := ev.Sign(keyOf(i))
				if err == nil && id != "" && ev.ID != id {
					err = errors.New("id changed when signing")
				}
				if err != nil {
					mu.Lock()
					first = firstErr(first, fmt.Errorf("sign event %d: %w", i, err))
					mu.Unlock()
				}
			}
		})
	}
	var err error
feed:
	for i := range events {
		select {
		case next <- i:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("sign corpus: %w", err)
	}
	return first
}

// firstErr keeps the first non-nil error.
func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// newCorpus indexes signed events and prepares their EVENT messages.
func newCorpus(spec CorpusSpec, events []*nostr.Event, pks []string) (*Corpus, error) {
	c := &Corpus{
		Spec:    spec,
		Events:  events,
		Pubkeys: pks,
		msgs:    make([][]byte, len(events)),
		byID:    make(map[string]int, len(events)),
	}
	for i, ev := range events {
		if i > 0 && ev.CreatedAt < events[i-1].CreatedAt {
			return nil, fmt.Errorf("corpus event %d is older than the one before it", i)
		}
		if _, dup := c.byID[ev.ID]; dup {
			return nil, fmt.Errorf("corpus event %d repeats id %s", i, ev.ID)
		}
		c.byID[ev.ID] = i
		msg, err := eventMessage(ev)
		if err != nil {
			return nil, err
		}
		c.msgs[i] = msg
	}
	return c, nil
}

// eventMessage is ["EVENT",<event>], ready for the wire.
func eventMessage(ev *nostr.Event) ([]byte, error) {
	raw, err := ev.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	return append(append([]byte(`["EVENT",`), raw...), ']'), nil
}

// corpusHeader is the first line of a cache file.
type corpusHeader struct {
	Format string   `json:"format"`
	Spec   specJSON `json:"spec"`
	Keys   []string `json:"pubkeys"`
}

type specJSON struct {
	Seed   uint64 `json:"seed"`
	Events int    `json:"events"`
	Keys   int    `json:"keys"`
	Until  int64  `json:"until"`
}

func (s CorpusSpec) json() specJSON {
	return specJSON{Seed: s.Seed, Events: s.Events, Keys: s.Keys, Until: s.Until}
}

// writeCorpus writes the cache file: a header line, then one event per line.
// It writes a temporary file and renames it, so a cache is whole or absent.
func writeCorpus(path string, c *Corpus) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("create corpus directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".corpus-*.tmp")
	if err != nil {
		return fmt.Errorf("create corpus file: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	w := bufio.NewWriterSize(tmp, 1<<20)
	hdr, err := json.Marshal(corpusHeader{Format: corpusFormat, Spec: c.Spec.json(), Keys: c.Pubkeys})
	if err != nil {
		return fmt.Errorf("encode corpus header: %w", err)
	}
	w.Write(hdr) //nolint:errcheck // bufio keeps the first error for Flush
	w.WriteByte('\n')
	for _, ev := range c.Events {
		raw, err := ev.MarshalJSON()
		if err != nil {
			return fmt.Errorf("encode event %s: %w", ev.ID, err)
		}
		w.Write(raw) //nolint:errcheck // see above
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("write corpus file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close corpus file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("install corpus file: %w", err)
	}
	return nil
}

// errBadCache says a cache file is not the corpus it claims to be.
var errBadCache = errors.New("corpus cache does not match")

// readCorpus reads a cache file and checks that it is the corpus of spec:
// the header, the count, and every event's id against its content. (Ids are
// cheap to check; signatures are the relay's job and cost as much as
// signing.)
func readCorpus(path string, spec CorpusSpec) (*Corpus, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open corpus cache: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 16<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("read corpus header: %w", firstErr(sc.Err(), errBadCache))
	}
	var hdr corpusHeader
	if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil {
		return nil, fmt.Errorf("decode corpus header: %w", err)
	}
	if hdr.Format != corpusFormat || hdr.Spec != spec.json() || len(hdr.Keys) != spec.Keys {
		return nil, fmt.Errorf("corpus header: %w", errBadCache)
	}
	events := make([]*nostr.Event, 0, spec.Events)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		ev := &nostr.Event{}
		if err := ev.UnmarshalJSON(line); err != nil {
			return nil, fmt.Errorf("decode corpus event %d: %w", len(events), err)
		}
		if !ev.CheckID() {
			return nil, fmt.Errorf("corpus event %d: id: %w", len(events), errBadCache)
		}
		events = append(events, ev)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read corpus cache: %w", err)
	}
	if len(events) != spec.Events {
		return nil, fmt.Errorf("corpus has %d events, want %d: %w", len(events), spec.Events, errBadCache)
	}
	return newCorpus(spec, events, hdr.Keys)
}
