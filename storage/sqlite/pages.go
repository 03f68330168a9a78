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
)

// A Query reads its events a page at a time, so that what it holds in
// memory is bounded however many events match and however slowly the
// caller takes them: a client that does not read must not make the relay
// gather 10 filters × 5,000 events (up to gigabytes) on its behalf.
//
// The first page is read in one read transaction, which fixes the
// watermark; while fn runs no transaction is open (a long reader would
// block WAL checkpoints). A filter whose results did not fit goes on in a
// later transaction after the last row it read, in the results' order
// (created_at descending, then id), among the events with a sequence
// number up to the watermark: so the results are those of the first
// snapshot, less what was deleted in between, and an event stored later
// is never among them (the relay sends it live). Most answers fit in the
// first page, as one statement per filter, as before.
//
// Several filters are merged as they are read: each is a stream of rows in
// the same order, the smallest head goes first, and a stream that runs dry
// while the database holds more is read on before the merge goes on. An
// event that matches several filters comes from each stream with the same
// key, so its repeats are adjacent. Search results are ranked, not
// ordered by time: the whole ranking is done in the first transaction and
// only their JSON is read page by page.

// DefaultPageBytes is the default of Options.PageBytes.
const DefaultPageBytes = 1 << 20

// errPageFull stops reading a page once it holds its share of bytes.
var errPageFull = errors.New("page full")

// stream is one filter's results on their way to the caller.
type stream struct {
	f      *nostr.Filter
	q      builtQuery // the first page's query
	ranked []row      // a search: the results still to read, best first, without JSON
	rows   []row      // read and not handed on yet, in order
	after  *row       // where the next page starts: the last row read (plain filters)
	left   int        // rows the filter's limit still allows; -1: no limit
	more   bool       // the database may hold more of its rows
}

// pager is one Query.
type pager struct {
	s         *Store
	now       int64
	keys      bool // read each row's created_at and id: several streams to merge
	streams   []*stream
	watermark int64
	first     bool // the first page is not read yet
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
	return p.s.snapshot(ctx, func(c *sqlite3.SQLiteConn) error {
		if p.first {
			p.first = false
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
				if st.ranked, err = rankSearch(ctx, c, st.q); err != nil {
					return err
				}
			}
		}
		for _, st := range streams {
			var err error
			if st.f.Search != "" {
				err = p.readRanked(ctx, c, st, share)
			} else {
				err = p.readPlain(ctx, c, st, share)
			}
			if err != nil {
				return fmt.Errorf("query: %w", err)
			}
		}
		return nil
	})
}

// readPlain reads the next page of a filter without search.
func (p *pager) readPlain(ctx context.Context, c *sqlite3.SQLiteConn, st *stream, share int) error {
	q := st.q
	if st.after != nil {
		pg := page{after: st.after, maxSeq: max(p.watermark, 1)} // nothing stored after the first snapshot
		if st.left > 0 {
			pg.limit = st.left
		}
		var ok bool
		var err error
		if q, ok, err = buildPage(st.f, p.now, pg); err != nil || !ok {
			st.more = false
			return err
		}
	}
	args, err := driverArgs(q.args)
	if err != nil {
		return err
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
	bytes, n := 0, 0
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
		if bytes += len(r.raw); bytes >= share {
			return errPageFull
		}
		return nil
	})
	full := errors.Is(err, errPageFull)
	if err != nil && !full {
		return err
	}
	if st.left > 0 {
		st.left -= n
	}
	st.more = full && st.left != 0
	if st.more {
		last := st.rows[len(st.rows)-1]
		if !p.keys {
			if last.createdAt, last.id, err = keyFromJSON(last.raw); err != nil {
				return err
			}
		}
		last.raw = nil
		st.after = &last
	}
	return nil
}

// readRanked reads the JSON of the next search results, best first. A
// result deleted since the ranking is passed over.
func (p *pager) readRanked(ctx context.Context, c *sqlite3.SQLiteConn, st *stream, share int) error {
	dest := make([]driver.Value, 1)
	bytes := 0
	for len(st.ranked) > 0 && bytes < share {
		r := st.ranked[0]
		st.ranked = st.ranked[1:]
		found := false
		err := queryRows(ctx, c, "SELECT CAST(raw AS BLOB) FROM events WHERE seq = ?",
			[]driver.NamedValue{{Ordinal: 1, Value: r.seq}}, dest, func() error {
				raw, ok := dest[0].([]byte)
				if !ok {
					return fmt.Errorf("JSON of type %T", dest[0])
				}
				r.raw, found = raw, true
				return nil
			})
		if err != nil {
			return fmt.Errorf("search: read event: %w", err)
		}
		if found {
			st.rows = append(st.rows, r)
			bytes += len(r.raw)
		}
	}
	st.more = len(st.ranked) > 0
	return nil
}

// keyFromJSON reads the created_at and id of a stored event.
func keyFromJSON(raw []byte) (int64, [32]byte, error) {
	var ev struct {
		ID        string `json:"id"`
		CreatedAt int64  `json:"created_at"`
	}
	var id [32]byte
	if err := json.Unmarshal(raw, &ev); err != nil || !decodeHex32(ev.ID, &id) {
		return 0, id, fmt.Errorf("stored event without a readable id: %.80s", raw)
	}
	return ev.CreatedAt, id, nil
}
