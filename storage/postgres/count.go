package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip45/hyperloglog"
	"github.com/wisp-relay/wisp/storage"
)

// NIP-45 COUNT: one statement counting the distinct events that the
// filters' SELECTs of seq find, stopping past the cap.

var _ storage.HLLCounter = (*Store)(nil)

// Count counts the events matching any of the filters; see storage.Store.
func (s *Store) Count(ctx context.Context, filters []nostr.Filter) (int64, bool, error) {
	n, approx, _, err := s.count(ctx, filters, -1)
	return n, approx, err
}

// CountHLL counts like Count and computes NIP-45's HyperLogLog registers;
// see storage.HLLCounter.
func (s *Store) CountHLL(ctx context.Context, filters []nostr.Filter, offset int) (int64, bool, []byte, error) {
	if offset < 0 || offset > 24 {
		return 0, false, nil, fmt.Errorf("count: hll offset %d: %w", offset, storage.ErrBadQuery)
	}
	return s.count(ctx, filters, offset)
}

// countSelects returns the SELECT of cols of the events each filter
// matches (no limit, no order), joined by UNION: the events matched by any.
// ok is false when no filter can match.
func countSelects(p *params, filters []nostr.Filter, now int64, cols string) (string, bool) {
	var branches []string
	for i := range filters {
		f := &filters[i]
		fp, ok := parseFilter(f)
		if !ok {
			continue
		}
		if f.Search == "" {
			branches = append(branches, selectFilter(p, &fp, now, cols, false, 0, nil))
			continue
		}
		query, ok := searchQuery(f.Search)
		if !ok {
			continue
		}
		var w where
		w.and("e.search @@ (" + p.add(query) + "::text)::tsquery")
		filterConds(&w, p, &fp, now)
		branches = append(branches, "SELECT "+cols+" FROM events AS e"+w.String())
	}
	if len(branches) == 0 {
		return "", false
	}
	return "(" + strings.Join(branches, ") UNION (") + ")", true
}

func (s *Store) count(ctx context.Context, filters []nostr.Filter, hllOffset int) (int64, bool, []byte, error) {
	if err := s.enter(); err != nil {
		return 0, false, nil, err
	}
	defer s.mu.RUnlock()
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	now := time.Now().Unix()
	var p params
	cols := "e.seq"
	if hllOffset >= 0 {
		cols = "e.seq, e.pubkey"
	}
	sel, ok := countSelects(&p, filters, now, cols)
	if !ok {
		if hllOffset >= 0 {
			return 0, false, make([]byte, 256), nil
		}
		return 0, false, nil, nil
	}
	capArg := p.add(s.countCap + 1)
	if hllOffset < 0 {
		var n int64
		err := s.read.QueryRow(ctx, "SELECT count(*) FROM (SELECT 1 FROM ("+sel+") AS m LIMIT "+capArg+") AS c", p.args...).Scan(&n)
		if err != nil {
			return 0, false, nil, countErr(ctx, err)
		}
		if n > int64(s.countCap) {
			return int64(s.countCap), true, nil, nil
		}
		return n, false, nil, nil
	}
	rows, err := s.read.Query(ctx, "SELECT m.pubkey FROM ("+sel+") AS m LIMIT "+capArg, p.args...)
	if err != nil {
		return 0, false, nil, countErr(ctx, err)
	}
	hll := hyperloglog.New(hllOffset)
	var n int64
	var pubkey []byte
	_, err = pgx.ForEachRow(rows, []any{&pubkey}, func() error {
		n++
		hll.AddBytes(pubkey)
		return nil
	})
	if err != nil {
		return 0, false, nil, countErr(ctx, err)
	}
	if n > int64(s.countCap) {
		return int64(s.countCap), true, nil, nil
	}
	return n, false, hll.GetRegisters(), nil
}

func countErr(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("count: %w", ctxErr)
	}
	return fmt.Errorf("count: %w", err)
}
