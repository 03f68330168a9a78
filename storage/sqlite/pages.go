package sqlite

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

// A Query reads its events a page at a time, so that what it holds in
// memory is bounded however many events match and however slowly the
// caller takes them: a client that does not read must not make the relay
// gather 10 filters × 5,000 events (up to gigabytes) on its behalf.
//
// The first page is read in one read transaction, which fixes the
// watermark; while fn runs no transaction is open (a long reader would
// block WAL checkpoints). A filter whose results do not fit the first page
// has the rest of its results listed in that same transaction by key only
// (seq, created_at, id: 48 bytes an event, at most its limit of them), and
// its JSON is then read by seq, a page at a time, in later transactions:
// so the results are those of the first snapshot, less what was deleted
// in between, and an event stored later is never among them (the relay
// sends it live). Listing keys once costs one sort of the keys, where
// resuming the query after its last row would sort the rest of its
// candidates, JSON and all, for every page. Most answers fit in the first
// page, as one statement per filter.
//
// Several filters are merged as they are read: each is a stream of rows in
// the same order, the smallest head goes first, and a stream that runs dry
// while it has more is read on before the merge goes on. An event that
// matches several filters comes from each stream with the same key, so its
// repeats are adjacent. Search results are ranked, not ordered by time:
// the whole ranking is done in the first transaction, and their JSON too
// is read by seq.

// DefaultPageBytes is the default of Options.PageBytes.
const DefaultPageBytes = 1 << 20

// errPageFull stops reading a page once it holds its share of bytes.
var errPageFull = errors.New("page full")

// stream is one filter's results on their way to the caller.
type stream struct {
	f    *nostr.Filter
	q    builtQuery // the first page's query
	rest []row      // the results still to read, in order, without JSON
	rows []row      // read and not handed on yet, in order
	left int        // rows the filter's limit still allows; -1: no limit
	more bool       // rest holds more of its results
}

// pager is one Query.
type pager struct {
	s         *Store
	now       int64
	keys      bool // read each row's created_at and id: several streams to merge
	streams   []*stream
	watermark int64
	first     bool // the first page is not read yet
	// readRows events of readBytes bytes read so far: their average size
	// sizes readRest's chunks.
	readRows, readBytes int64
}

// Query runs the filters a page at a time; see storage.Store and above.
func (s *Store) Query(ctx context.Context, filters []nostr.Filter, fn func(raw []byte) error) (int64, error) {
	p := &pager{s: s, now: time.Now().Unix(), keys: len(filters) > 1, first: true}
	for i := range filters {
		f := &filters[i]
		build := buildQuery
		if f.Search != "" {
			build = buildSearchQuery
		}
		q, ok, err := build(f, p.now)
		if err != nil {
			return 0, fmt.Errorf("query filter %d: %w", i, err)
		}
		if ok {
			left := -1
			if f.Limit > 0 {
				left = f.Limit
			}
			p.streams = append(p.streams, &stream{f: f, q: q, left: left, more: true})
		}
	}
	if err := p.read(ctx, p.streams); err != nil {
		return 0, err
	}
	var (
		last   row   // the last row handed on, for repeats of several filters
		any    bool  // last is set
		ranked idSet // ranked rows handed on, when search and other filters mix
		dry    []*stream
	)
	if p.keys && p.hasSearch() {
		ranked = idSet{}
	}
	for {
		dry = dry[:0]
		for _, st := range p.streams {
			if len(st.rows) == 0 && st.more {
				dry = append(dry, st)
			}
		}
		if len(dry) > 0 {
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("query: %w", err)
			}
			if err := p.read(ctx, dry); err != nil {
				return 0, err
			}
			continue
		}
		var next *stream
		for _, st := range p.streams {
			if len(st.rows) > 0 && (next == nil || compareRows(st.rows[0], next.rows[0]) < 0) {
				next = st
			}
		}
		if next == nil {
			return p.watermark, nil
		}
		r := next.rows[0]
		next.rows[0] = row{} // the JSON is the caller's now
		next.rows = next.rows[1:]
		if p.keys {
			if any && compareRows(last, r) == 0 {
				continue
			}
			last, any = r, true
			// Ranked rows all come first, so the set holds only theirs.
			if ranked != nil && r.ranked && !ranked.first(r.id) {
				continue
			}
			if _, dup := ranked[r.id]; ranked != nil && !r.ranked && dup {
				continue
			}
		}
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("query: %w", err)
		}
		if err := fn(r.raw); err != nil {
			return 0, err
		}
	}
}

func (p *pager) hasSearch() bool {
	for _, st := range p.streams {
		if st.f.Search != "" {
			return true
		}
	}
	return false
}

// read reads the next page of each of streams in one read transaction,
// each up to an even share of the page's bytes (at least one row). The
// first call also reads the watermark and ranks the searches.
func (p *pager) read(ctx context.Context, streams []*stream) error {
	share := max(1, p.s.pageBytes/max(1, len(streams)))
	first := p.first
	p.first = false
	return p.s.snapshot(ctx, func(c *sqlite3.SQLiteConn) error {
		if first {
			dest := make([]driver.Value, 1)
			if err := queryRows(context.Background(), c, watermarkSQL, nil, dest, func() error { return nil }); err != nil {
				return fmt.Errorf("query: read watermark: %w", err)
			}
			p.watermark, _ = dest[0].(int64)
			for _, st := range streams {
				if st.f.Search == "" {
					continue
				}
				var err error
				if st.rest, err = rankSearch(ctx, c, st.q); err != nil {
					return err
				}
			}
		}
		for _, st := range streams {
			var err error
			if st.f.Search != "" || !first {
				err = p.readRest(ctx, c, st, share)
			} else {
				err = p.readFirst(ctx, c, st, share)
			}
			if err != nil {
				return fmt.Errorf("query: %w", err)
			}
		}
		return nil
	})
}

// readFirst reads the first page of a filter without search, and when
// the page cannot hold all its results, lists the keys of the rest.
func (p *pager) readFirst(ctx context.Context, c *sqlite3.SQLiteConn, st *stream, share int) error {
	bytes, n := 0, 0
	var err error
	if p.s.probe.probeable(st.f) {
		n, err = p.readProbe(ctx, c, st, share, &bytes)
	} else {
		n, err = p.readQuery(ctx, c, st, st.q, share, &bytes)
	}
	full := errors.Is(err, errPageFull)
	if err != nil && !full {
		return err
	}
	if st.left > 0 {
		st.left -= n
	}
	if !full || st.left == 0 {
		st.more = false
		return nil
	}
	last := st.rows[len(st.rows)-1]
	if !p.keys {
		if last.createdAt, last.id, err = keyFromJSON(last.raw); err != nil {
			return err
		}
	}
	last.raw = nil
	pg := page{after: &last}
	if st.left > 0 {
		pg.limit = st.left
	}
	q, ok, err := buildPage(st.f, p.now, pg)
	if err != nil || !ok {
		st.more = false
		return err
	}
	args, err := driverArgs(q.args)
	if err != nil {
		return err
	}
	dest := make([]driver.Value, 3)
	err = queryRows(ctx, c, "SELECT e.seq, e.created_at, e.id"+q.sql[len(selectEvents):], args, dest, func() error {
		var r row
		r.seq, _ = dest[0].(int64)
		r.createdAt, _ = dest[1].(int64)
		id, _ := dest[2].([]byte)
		if len(id) != 32 {
			return fmt.Errorf("row with a %d-byte id", len(id))
		}
		copy(r.id[:], id)
		st.rest = append(st.rest, r)
		return nil
	})
	if err != nil {
		return err
	}
	st.more = len(st.rest) > 0
	return nil
}

// readQuery reads the rows of q into the stream's first page until *bytes
// reaches share (errPageFull), counting them.
func (p *pager) readQuery(ctx context.Context, c *sqlite3.SQLiteConn, st *stream, q builtQuery, share int, bytes *int) (int, error) {
	args, err := driverArgs(q.args)
	if err != nil {
		return 0, err
	}
	query := q.sql
	dest := make([]driver.Value, 3)
	if !p.keys {
		// One stream's rows need no merging: only the JSON is read, since
		// each other column would cost an allocation per row; the key of
		// the last row, if the page ends early, comes from its JSON.
		query = "SELECT CAST(e.raw AS BLOB)" + q.sql[len(selectEvents):]
		dest = dest[:1]
	}
	n := 0
	err = queryRows(ctx, c, query, args, dest, func() error {
		var r row
		if p.keys {
			r.createdAt, _ = dest[0].(int64)
			id, _ := dest[1].([]byte)
			raw, ok := dest[2].([]byte)
			if len(id) != 32 || !ok {
				return fmt.Errorf("row with a %d-byte id or JSON of type %T", len(id), dest[2])
			}
			copy(r.id[:], id)
			r.raw = raw
		} else {
			raw, ok := dest[0].([]byte)
			if !ok {
				return fmt.Errorf("JSON of type %T", dest[0])
			}
			r.raw = raw
		}
		st.rows = append(st.rows, r)
		n++
		p.readRows++
		p.readBytes += int64(len(r.raw))
		if *bytes += len(r.raw); *bytes >= share {
			return errPageFull
		}
		return nil
	})
	return n, err
}

// restChunk is the most listed results one statement of readRest reads;
// fewer when the events seen so far are big, so that a chunk stays
// within its share of the page.
const restChunk = 100

// readRest reads the JSON of the stream's next listed results, by seq, a
// chunk of them a statement. A result deleted since it was listed is
// passed over.
func (p *pager) readRest(ctx context.Context, c *sqlite3.SQLiteConn, st *stream, share int) error {
	dest := make([]driver.Value, 2)
	bytes := 0
	byseq := make(map[int64][]byte, restChunk)
	for len(st.rest) > 0 && bytes < share {
		n := restChunk
		if p.readRows > 0 {
			n = min(n, max(1, (share-bytes)*int(p.readRows)/int(p.readBytes)))
		}
		chunk := st.rest[:min(len(st.rest), n)]
		st.rest = st.rest[len(chunk):]
		args := make([]driver.NamedValue, len(chunk))
		for i, r := range chunk {
			args[i] = driver.NamedValue{Ordinal: i + 1, Value: r.seq}
		}
		clear(byseq)
		err := queryRows(ctx, c, "SELECT seq, CAST(raw AS BLOB) FROM events WHERE "+inList("seq", len(chunk)), args, dest, func() error {
			seq, _ := dest[0].(int64)
			raw, ok := dest[1].([]byte)
			if !ok {
				return fmt.Errorf("JSON of type %T", dest[1])
			}
			byseq[seq] = raw
			return nil
		})
		if err != nil {
			return fmt.Errorf("read listed events: %w", err)
		}
		for _, r := range chunk {
			if raw, ok := byseq[r.seq]; ok {
				r.raw = raw
				st.rows = append(st.rows, r)
				bytes += len(raw)
				p.readRows++
				p.readBytes += int64(len(raw))
			}
		}
	}
	st.more = len(st.rest) > 0
	return nil
}

// keyFromJSON reads the created_at and id of a stored event.
func keyFromJSON(raw []byte) (int64, [32]byte, error) {
	var ev struct {
		ID        string `json:"id"`
		CreatedAt int64  `json:"created_at"`
	}
	var id [32]byte
	if err := json.Unmarshal(raw, &ev); err != nil || !evkey.DecodeHex32(ev.ID, &id) {
		return 0, id, fmt.Errorf("stored event without a readable id: %.80s", raw)
	}
	return ev.CreatedAt, id, nil
}
