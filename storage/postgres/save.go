package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/wisp-relay/wisp/storage"
)

// Save stores items in one transaction; see storage.Store.
//
// Every Save, in every process on the database, holds the same
// transaction-level advisory lock (lockWrite) from its first statement to
// its commit. Saves are therefore serialised: two processes racing on one
// replaceable address, on a deletion and the event it deletes, or on a
// request to vanish and a gift wrap, decide one after the other on
// committed data, and sequence numbers, taken under the lock, commit in
// their order, so that a snapshot holds every event up to its highest seq.
// Queries, counts and moderation take no lock.
//
// A batch costs two round trips: the lock and the state it is decided
// against (fetchState), then its writes and the commit (write).
func (s *Store) Save(ctx context.Context, items []storage.Item) ([]storage.Result, error) {
	// Work out each item before the transaction: a bad item fails the batch.
	its := make([]item, len(items))
	kinds := s.searchKinds.Load()
	for i := range items {
		if err := prepare(&items[i], &its[i]); err != nil {
			return nil, fmt.Errorf("save item %d: %w", i, err)
		}
		its[i].index(kinds)
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if len(items) == 0 {
		return []storage.Result{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("save: %w", err)
	}
	// A server that stops answering fails the Save rather than hang the
	// writer (Options.Timeout).
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	var results []storage.Result
	err := retry(ctx, func() error {
		var err error
		results, err = s.saveOnce(ctx, its)
		return err
	})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("save: %w", ctxErr)
		}
		return nil, fmt.Errorf("save: %w", err)
	}
	return results, nil
}

// index computes the item's search vector when its kind is in kinds, the
// indexed kinds (sorted), unless it was computed for that list already.
func (it *item) index(kinds *[]int) {
	if it.searchFor == kinds {
		return
	}
	it.searchFor = kinds
	it.search = nil
	if _, ok := slices.BinarySearch(*kinds, it.kind); ok {
		it.search = searchVector(it.ev.Content)
	}
}

func (s *Store) saveOnce(ctx context.Context, its []item) ([]storage.Result, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer releaseClean(conn)

	st, err := fetchState(ctx, conn, its)
	if err != nil {
		return nil, err
	}
	// Another process changed the indexed kinds: follow the database.
	kinds := s.searchKinds.Load()
	if !slices.Equal(*kinds, st.kinds) {
		kinds = &st.kinds
		s.searchKinds.Store(kinds)
	}
	p := decide(its, st)
	for _, i := range p.stored {
		if p.live[i] {
			its[i].index(kinds)
		}
	}
	seqs, err := write(ctx, conn, its, p)
	if err != nil {
		return nil, err
	}
	for n, i := range p.stored {
		p.results[i].Seq = seqs[n]
	}
	return p.results, nil
}

// releaseClean returns a connection to the pool outside any transaction: a
// Save that failed half-way rolls back here (the pool would otherwise
// close the connection).
func releaseClean(conn *pgxpool.Conn) {
	if c := conn.Conn(); !c.IsClosed() && c.PgConn().TxStatus() != 'I' {
		ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
		_, _ = c.Exec(ctx, "ROLLBACK")
		cancel()
	}
	conn.Release()
}

const rollbackTimeout = 5 * time.Second

// fetchState begins the transaction, takes the write lock and reads what
// the batch is decided against, all in one round trip.
func fetchState(ctx context.Context, conn *pgxpool.Conn, its []item) (*dbState, error) {
	var ids, tombIDs, pks [][]byte
	var addrPK, addrD [][]byte
	var addrKind []int32
	seenPK := map[[32]byte]bool{}
	seenAddr := map[addrKey]bool{}
	addPK := func(pk [32]byte) {
		if !seenPK[pk] {
			seenPK[pk] = true
			pks = append(pks, pk[:])
		}
	}
	for i := range its {
		it := &its[i]
		ids = append(ids, it.id[:])
		if it.kind != kindDeletion {
			tombIDs = append(tombIDs, it.id[:])
		}
		addPK(it.pk)
		for _, p := range it.pTargets {
			addPK(p)
		}
		if a := it.addr(); it.address && !seenAddr[a] {
			seenAddr[a] = true
			addrPK, addrKind, addrD = append(addrPK, it.pk[:]), append(addrKind, int32(it.kind)), append(addrD, []byte(a.d))
		}
	}
	for i := range addrD {
		if addrD[i] == nil {
			addrD[i] = []byte{} // '' and not NULL
		}
	}

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SELECT pg_advisory_xact_lock($1, $2)", lockClass, lockWrite)
	st := &dbState{
		exists:   map[[32]byte]bool{},
		tomb:     map[tombKey]bool{},
		vanished: map[[32]byte]int64{},
		addrTomb: map[addrKey]int64{},
		current:  map[addrKey]version{},
		kinds:    []int{},
	}
	var (
		id, pk, d []byte
		kind      int32
		at        int64
	)
	b.Queue("SELECT kind FROM search_kinds ORDER BY kind").Query(func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&kind}, func() error {
			st.kinds = append(st.kinds, int(kind))
			return nil
		})
		return err
	})
	b.Queue("SELECT id FROM events WHERE id = ANY($1)", ids).Query(func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&id}, func() error {
			st.exists[[32]byte(id)] = true
			return nil
		})
		return err
	})
	if len(tombIDs) > 0 {
		b.Queue("SELECT id, pubkey FROM deleted_ids WHERE id = ANY($1)", tombIDs).Query(func(rows pgx.Rows) error {
			_, err := pgx.ForEachRow(rows, []any{&id, &pk}, func() error {
				st.tomb[tombKey{[32]byte(id), [32]byte(pk)}] = true
				return nil
			})
			return err
		})
	}
	b.Queue("SELECT pubkey, until FROM vanished WHERE pubkey = ANY($1)", pks).Query(func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&pk, &at}, func() error {
			st.vanished[[32]byte(pk)] = at
			return nil
		})
		return err
	})
	if len(addrPK) > 0 {
		b.Queue(`SELECT e.pubkey, e.kind, e.d_tag, e.created_at, e.id FROM events AS e
			JOIN unnest($1::bytea[], $2::integer[], $3::bytea[]) AS a (pubkey, kind, d)
			ON e.pubkey = a.pubkey AND e.kind = a.kind AND e.d_tag = a.d`, addrPK, addrKind, addrD).Query(func(rows pgx.Rows) error {
			_, err := pgx.ForEachRow(rows, []any{&pk, &kind, &d, &at, &id}, func() error {
				st.current[addrKey{[32]byte(pk), int(kind), string(d)}] = version{id: [32]byte(id), created: at, batch: -1}
				return nil
			})
			return err
		})
		b.Queue(`SELECT t.pubkey, t.kind, t.d, t.until FROM deleted_addresses AS t
			JOIN unnest($1::bytea[], $2::integer[], $3::bytea[]) AS a (pubkey, kind, d)
			ON t.pubkey = a.pubkey AND t.kind = a.kind AND t.d = a.d`, addrPK, addrKind, addrD).Query(func(rows pgx.Rows) error {
			_, err := pgx.ForEachRow(rows, []any{&pk, &kind, &d, &at}, func() error {
				st.addrTomb[addrKey{[32]byte(pk), int(kind), string(d)}] = at
				return nil
			})
			return err
		})
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	return st, nil
}

// insertSQL inserts a batch's rows and their tags in one statement, and
// returns a sequence number for each stored item in batch order: taken
// from the sequence one after the other (generate_series yields its rows
// in order), so they ascend as the items do.
const insertSQL = `WITH seqs AS MATERIALIZED (
	SELECT ord, nextval('events_seq') AS seq FROM generate_series(1, $1::integer) AS ord
), ev AS (
	INSERT INTO events (seq, id, pubkey, created_at, kind, d_tag, expiration, raw, search)
	SELECT s.seq, u.id, u.pubkey, u.created_at, u.kind, u.d_tag, u.expiration, u.raw, u.search::tsvector
	FROM unnest($2::integer[], $3::bytea[], $4::bytea[], $5::bigint[], $6::integer[], $7::bytea[], $8::bigint[], $9::bytea[], $10::text[])
		AS u (ord, id, pubkey, created_at, kind, d_tag, expiration, raw, search)
	JOIN seqs AS s USING (ord)
), tg AS (
	INSERT INTO tags (seq, name, value, kind, created_at)
	SELECT s.seq, t.name, t.value, t.kind, t.created_at
	FROM unnest($11::integer[], $12::text[], $13::bytea[], $14::integer[], $15::bigint[])
		AS t (ord, name, value, kind, created_at)
	JOIN seqs AS s USING (ord)
)
SELECT seq FROM seqs ORDER BY ord`

// write sends the plan's writes and the commit in one round trip and
// returns the sequence numbers of the stored items, in order.
func write(ctx context.Context, conn *pgxpool.Conn, its []item, p *plan) ([]int64, error) {
	b := &pgx.Batch{}
	// Deletions first, so that they reach only rows stored before the batch.
	if len(p.delIDs) > 0 {
		b.Queue("DELETE FROM events WHERE id = ANY($1)", keyArgs(p.delIDs))
	}
	if len(p.tombs) > 0 {
		var ids, pks [][]byte
		for k := range p.tombs {
			ids, pks = append(ids, k.id[:]), append(pks, k.pk[:])
		}
		b.Queue(`DELETE FROM events AS e USING unnest($1::bytea[], $2::bytea[]) AS x (id, pubkey)
			WHERE e.id = x.id AND e.pubkey = x.pubkey AND e.kind <> 5`, ids, pks)
		b.Queue(`INSERT INTO deleted_ids (id, pubkey) SELECT * FROM unnest($1::bytea[], $2::bytea[])
			ON CONFLICT DO NOTHING`, ids, pks)
	}
	if len(p.delA) > 0 {
		pks, kinds, ds, untils := addrArgs(p.delA)
		b.Queue(`DELETE FROM events AS e USING unnest($1::bytea[], $2::integer[], $3::bytea[], $4::bigint[]) AS a (pubkey, kind, d, until)
			WHERE e.pubkey = a.pubkey AND e.kind = a.kind AND e.d_tag = a.d AND e.created_at <= a.until`, pks, kinds, ds, untils)
		b.Queue(`INSERT INTO deleted_addresses (pubkey, kind, d, until)
			SELECT * FROM unnest($1::bytea[], $2::integer[], $3::bytea[], $4::bigint[])
			ON CONFLICT (pubkey, kind, d) DO UPDATE SET until = greatest(deleted_addresses.until, excluded.until)`, pks, kinds, ds, untils)
	}
	if len(p.vanish) > 0 {
		var pks, hexes [][]byte
		var untils []int64
		for pk, until := range p.vanish {
			pks, hexes, untils = append(pks, pk[:]), append(hexes, []byte(hex.EncodeToString(pk[:]))), append(untils, until)
		}
		b.Queue(`DELETE FROM events AS e USING unnest($1::bytea[], $2::bigint[]) AS v (pubkey, until)
			WHERE e.pubkey = v.pubkey AND e.created_at <= v.until AND e.kind <> 62`, pks, untils)
		b.Queue(`DELETE FROM events WHERE seq IN (
			SELECT t.seq FROM tags AS t JOIN unnest($1::bytea[], $2::bigint[]) AS v (value, until)
			ON t.name = 'p' AND t.value = v.value AND t.created_at <= v.until AND t.kind = 1059)`, hexes, untils)
		b.Queue(`INSERT INTO vanished (pubkey, until) SELECT * FROM unnest($1::bytea[], $2::bigint[])
			ON CONFLICT (pubkey) DO UPDATE SET until = greatest(vanished.until, excluded.until)`, pks, untils)
	}
	seqs := make([]int64, 0, len(p.stored))
	if len(p.stored) > 0 {
		args := insertArgs(its, p)
		b.Queue(insertSQL, args...).Query(func(rows pgx.Rows) error {
			var seq int64
			_, err := pgx.ForEachRow(rows, []any{&seq}, func() error {
				seqs = append(seqs, seq)
				return nil
			})
			return err
		})
	}
	if len(p.stored) > 0 || len(p.delIDs) > 0 || len(p.tombs) > 0 || len(p.delA) > 0 || len(p.vanish) > 0 {
		// One notice per batch, sent by the commit (and only if it
		// commits): the highest seq it drew (currval, this session's
		// last nextval), or "" when it only deleted.
		payload := "''"
		if len(p.stored) > 0 {
			payload = "currval('events_seq')::text"
		}
		b.Queue("SELECT pg_notify('" + channelEvents + "', " + payload + ")")
	}
	var commit string
	b.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
		commit = tag.String()
		return nil
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	// A transaction that failed answers COMMIT with ROLLBACK.
	if commit != "COMMIT" {
		return nil, errors.New("write: commit: transaction rolled back")
	}
	if len(seqs) != len(p.stored) {
		return nil, fmt.Errorf("write: %d sequence numbers for %d events", len(seqs), len(p.stored))
	}
	return seqs, nil
}

func keyArgs(keys [][32]byte) [][]byte {
	out := make([][]byte, len(keys))
	for i := range keys {
		out[i] = keys[i][:]
	}
	return out
}

func addrArgs(m map[addrKey]int64) (pks [][]byte, kinds []int32, ds [][]byte, untils []int64) {
	for a, until := range m {
		pk := a.pk
		pks, kinds, ds, untils = append(pks, pk[:]), append(kinds, int32(a.kind)), append(ds, append([]byte{}, a.d...)), append(untils, until)
	}
	return pks, kinds, ds, untils
}

// insertArgs are insertSQL's arguments: the stored items' numbers, the
// rows of the live ones, and their tags.
func insertArgs(its []item, p *plan) []any {
	var (
		ord, kinds         []int32
		ids, pks, ds, raws [][]byte
		created, exps      []*int64
		searches           []*string
		tOrd, tKinds       []int32
		tNames             []string
		tValues            [][]byte
		tCreated           []int64
	)
	for n, i := range p.stored {
		if !p.live[i] {
			continue
		}
		it := &its[i]
		o := int32(n + 1)
		var d []byte // NULL for regular events
		if it.address {
			d = append([]byte{}, it.d...)
		}
		c := it.created
		ord, kinds = append(ord, o), append(kinds, int32(it.kind))
		ids, pks, ds, raws = append(ids, it.id[:]), append(pks, it.pk[:]), append(ds, d), append(raws, it.raw)
		created, exps, searches = append(created, &c), append(exps, it.exp), append(searches, it.search)
		for _, t := range it.tags {
			tOrd, tKinds = append(tOrd, o), append(tKinds, int32(it.kind))
			tNames, tValues, tCreated = append(tNames, t.name), append(tValues, append([]byte{}, t.value...)), append(tCreated, it.created)
		}
	}
	return []any{len(p.stored), ord, ids, pks, created, kinds, ds, exps, raws, searches,
		tOrd, tNames, tValues, tKinds, tCreated}
}
