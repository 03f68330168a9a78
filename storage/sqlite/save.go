package sqlite

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	"github.com/mattn/go-sqlite3"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

// Writer statements, prepared once on each writer connection (see
// writerConn) and run on the driver directly.
const (
	stmtIDTombstoned = iota
	stmtAddrTombstoned
	stmtExists
	stmtCurrentVersion
	stmtDeleteSeq
	stmtInsertEvent
	stmtInsertTag
	stmtDeleteByID
	stmtDeleteAddress
	stmtTombstoneID
	stmtTombstoneAddress
	stmtBegin
	stmtCommit
	stmtRollback
	numStmts
)

func writeSQL() [numStmts]string {
	return [numStmts]string{
		stmtIDTombstoned:   `SELECT 1 FROM deleted_ids WHERE id = ? AND pubkey = ?`,
		stmtAddrTombstoned: `SELECT 1 FROM deleted_addresses WHERE pubkey = ? AND kind = ? AND d = ? AND until >= ?`,
		stmtExists:         `SELECT 1 FROM events WHERE id = ?`,
		stmtCurrentVersion: `SELECT seq, created_at, id FROM events WHERE pubkey = ? AND kind = ? AND d_tag = ?`,
		stmtDeleteSeq:      `DELETE FROM events WHERE seq = ?`,
		// The raw JSON is bound as a BLOB (no string copy) and stored as TEXT.
		stmtInsertEvent: `INSERT INTO events (id, pubkey, created_at, kind, d_tag, expiration, raw)
			VALUES (?, ?, ?, ?, ?, ?, CAST(? AS TEXT))
			ON CONFLICT (id) DO NOTHING RETURNING seq`,
		stmtInsertTag: `INSERT INTO tags (seq, name, value, kind, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`,
		// A kind 5 never deletes another kind 5 (NIP-09).
		stmtDeleteByID:    `DELETE FROM events WHERE id = ? AND pubkey = ? AND kind != 5`,
		stmtDeleteAddress: `DELETE FROM events WHERE pubkey = ? AND kind = ? AND d_tag = ? AND created_at <= ?`,
		stmtTombstoneID:   `INSERT INTO deleted_ids (id, pubkey) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		stmtTombstoneAddress: `INSERT INTO deleted_addresses (pubkey, kind, d, until) VALUES (?, ?, ?, ?)
			ON CONFLICT (pubkey, kind, d) DO UPDATE SET until = max(until, excluded.until)`,
		stmtBegin:    `BEGIN IMMEDIATE`,
		stmtCommit:   `COMMIT`,
		stmtRollback: `ROLLBACK`,
	}
}

// writerDriverName is the driver of the writer connection: driverName's,
// with the Save statements kept on each connection (writerConn).
const writerDriverName = "sqlite3_wisp_writer"

// writerDriver opens writerConns.
type writerDriver struct{ d *sqlite3.SQLiteDriver }

func (d writerDriver) Open(dsn string) (driver.Conn, error) {
	c, err := d.d.Open(dsn)
	if err != nil {
		return nil, err
	}
	sc, ok := c.(*sqlite3.SQLiteConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("sqlite driver connection is a %T", c)
	}
	return &writerConn{SQLiteConn: sc}, nil
}

// writerConn is a writer connection with the Save statements prepared on
// it. Save runs them on the driver directly (sql.Conn.Raw), binding the
// values itself: database/sql's statements, transaction and per-call
// argument conversions cost about 40 % of the writer's CPU per event (see
// BENCHMARKS.md, "Writer on the driver connection"). The statements belong
// to the connection: they are finalized when it closes, whoever closes it
// (Store.Close, or database/sql discarding it after a transaction whose
// context was cancelled), before the SQLite handle goes; a connection
// opened in its place prepares its own.
type writerConn struct {
	*sqlite3.SQLiteConn
	st [numStmts]*sqlite3.SQLiteStmt // nil until prepare
}

// prepare prepares the statements unless they are.
func (c *writerConn) prepare() error {
	if c.st[0] != nil {
		return nil
	}
	for i, q := range writeSQL() {
		st, err := c.SQLiteConn.Prepare(q)
		if err != nil {
			return errors.Join(fmt.Errorf("prepare writer statement %d: %w", i, err), c.closeStmts())
		}
		c.st[i] = st.(*sqlite3.SQLiteStmt)
	}
	return nil
}

// closeStmts finalizes the prepared statements, each once.
func (c *writerConn) closeStmts() error {
	var errs []error
	for i, st := range c.st {
		if st != nil {
			c.st[i] = nil
			if err := st.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close writer statement %d: %w", i, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Close finalizes the statements, then closes the connection: SQLite
// keeps a connection with statements left open as a zombie, file
// descriptor included, that nothing would ever close.
func (c *writerConn) Close() error {
	return errors.Join(c.closeStmts(), c.SQLiteConn.Close())
}

// keys are an item's id and pubkey, decoded once before the transaction.
type keys struct{ id, pubkey [32]byte }

// Save stores items in one BEGIN IMMEDIATE transaction; see storage.Store.
func (s *Store) Save(ctx context.Context, items []storage.Item) ([]storage.Result, error) {
	// Validate before taking the write lock: a bad item fails the batch.
	ks := make([]keys, len(items))
	for i := range items {
		if err := checkItem(&items[i], &ks[i]); err != nil {
			return nil, fmt.Errorf("save item %d: %w", i, err)
		}
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, storage.ErrClosed
	}
	results := make([]storage.Result, len(items))
	if len(items) == 0 {
		return results, nil
	}
	if len(items) > loadedBatch && len(s.searchKinds) > 0 {
		s.loadedBatches.Add(1)
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("save: connection: %w", err)
	}
	defer conn.Close()
	var vanishes map[[32]byte]int64
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*writerConn)
		if !ok {
			return fmt.Errorf("save: writer connection is a %T", dc)
		}
		w := writeTx{c: c, van: &s.vanish}
		if err := w.run(ctx, items, ks, results); err != nil {
			return err
		}
		vanishes = w.vanishes
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.vanish.commit(vanishes)
	return results, nil
}

// run saves items in one transaction, committed only if all of them went
// in and ctx was not cancelled meanwhile. The statements run without ctx,
// since with a cancel channel the driver starts a goroutine per statement;
// ctx is checked between events instead.
func (w *writeTx) run(ctx context.Context, items []storage.Item, ks []keys, results []storage.Result) error {
	if err := w.c.prepare(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := w.exec(stmtBegin); err != nil {
		return fmt.Errorf("save: begin: %w", err)
	}
	for i := range items {
		if err := ctx.Err(); err != nil {
			return w.rollback(fmt.Errorf("save: %w", err))
		}
		r, err := w.save(&items[i], &ks[i])
		if err != nil {
			return w.rollback(fmt.Errorf("save event %s: %w", items[i].Event.ID, err))
		}
		results[i] = r
	}
	if err := ctx.Err(); err != nil {
		return w.rollback(fmt.Errorf("save: %w", err))
	}
	if err := w.exec(stmtCommit); err != nil {
		return w.rollback(fmt.Errorf("save: commit: %w", err))
	}
	return nil
}

// rollback ends the failed transaction, returning cause. A connection that
// cannot roll back must not be used again, still inside the transaction:
// driver.ErrBadConn makes database/sql close it.
func (w *writeTx) rollback(cause error) error {
	if w.c.AutoCommit() {
		return cause // SQLite already rolled back (an I/O error, a full disk)
	}
	if err := w.exec(stmtRollback); err != nil {
		return errors.Join(cause, fmt.Errorf("save: rollback: %w", err), driver.ErrBadConn)
	}
	return cause
}

func checkItem(it *storage.Item, k *keys) error {
	ev := it.Event
	switch {
	case ev == nil:
		return fmt.Errorf("no event: %w", ErrBadEvent)
	case len(it.Raw) == 0:
		return fmt.Errorf("empty raw json: %w", ErrBadEvent)
	case nostr.IsEphemeralKind(ev.Kind):
		return fmt.Errorf("ephemeral kind %d: %w", ev.Kind, ErrBadEvent)
	case !evkey.DecodeHex32(ev.ID, &k.id):
		return fmt.Errorf("id %q: %w", ev.ID, ErrBadEvent)
	case !evkey.DecodeHex32(ev.PubKey, &k.pubkey):
		return fmt.Errorf("pubkey %q: %w", ev.PubKey, ErrBadEvent)
	}
	return nil
}

// writeTx is one Save transaction on the writer's driver connection.
type writeTx struct {
	c    *writerConn
	args [7]driver.NamedValue // the arguments of the statement running
	row  [3]driver.Value      // and the row it returned

	van      *vanishState       // NIP-62 requests committed earlier
	vanishes map[[32]byte]int64 // and those of this transaction
}

// named makes args the driver's arguments, reusing one array: the driver
// binds them before the statement returns and keeps none.
func (w *writeTx) named(args []any) []driver.NamedValue {
	a := w.args[:len(args)]
	for i, v := range args {
		a[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return a
}

// queryRow runs statement i, leaving its first row, if any, in w.row.
func (w *writeTx) queryRow(i int, args ...any) (bool, error) {
	rows, err := w.c.st[i].QueryContext(context.Background(), w.named(args))
	if err != nil {
		return false, err
	}
	err = rows.Next(w.row[:len(rows.Columns())])
	cerr := rows.Close()
	switch {
	case err == io.EOF:
		return false, cerr
	case err != nil:
		return false, err
	}
	return true, cerr
}

// exists runs a SELECT 1 statement.
func (w *writeTx) exists(i int, args ...any) (bool, error) {
	return w.queryRow(i, args...)
}

func (w *writeTx) exec(i int, args ...any) error {
	_, err := w.c.st[i].ExecContext(context.Background(), w.named(args))
	return err
}

// execSQL runs SQL that is not one of the prepared statements (the rare
// paths: NIP-62).
func (w *writeTx) execSQL(query string, args ...any) error {
	na, err := driverArgs(args)
	if err != nil {
		return err
	}
	_, err = w.c.ExecContext(context.Background(), query, na)
	return err
}

func (w *writeTx) save(it *storage.Item, k *keys) (storage.Result, error) {
	ev := it.Event
	id, pk := k.id[:], k.pubkey[:]
	created := int64(ev.CreatedAt)

	// NIP-62: what a request to vanish covered never comes back.
	if w.vanished(ev, k, created) {
		return vanishedResult, nil
	}
	if ev.Kind == KindVanish {
		if err := w.applyVanish(pk, k.pubkey, created); err != nil {
			return storage.Result{}, err
		}
	}

	// A kind 5 cannot be deleted, so its id tombstones do not apply to it.
	if ev.Kind != 5 {
		deleted, err := w.exists(stmtIDTombstoned, id, pk)
		if err != nil {
			return storage.Result{}, fmt.Errorf("check deleted id: %w", err)
		}
		if deleted {
			return storage.Result{Outcome: storage.Deleted}, nil
		}
	}

	var dTag any // NULL for regular events
	if replaceable, addressable := nostr.IsReplaceableKind(ev.Kind), nostr.IsAddressableKind(ev.Kind); replaceable || addressable {
		d := ""
		if addressable {
			d = ev.Tags.GetD()
		}
		dTag = d
		if r, done, err := w.replace(ev, id, pk, d, created); err != nil || done {
			return r, err
		}
	}

	var exp any // NULL without a NIP-40 tag
	if e, ok, _ := storage.Expiration(ev.Tags); ok {
		exp = e // malformed tags, which the relay refuses, are ignored
	}
	inserted, err := w.queryRow(stmtInsertEvent, id, pk, created, int64(ev.Kind), dTag, exp, it.Raw)
	if err != nil {
		return storage.Result{}, fmt.Errorf("insert event: %w", err)
	}
	if !inserted {
		return storage.Result{Outcome: storage.Duplicate}, nil
	}
	seq, ok := w.row[0].(int64)
	if !ok {
		return storage.Result{}, fmt.Errorf("insert event: seq is a %T", w.row[0])
	}

	for _, tag := range ev.Tags {
		if len(tag) < 2 || !evkey.IndexedTagName(tag[0]) {
			continue
		}
		if err := w.exec(stmtInsertTag, seq, tag[0], tag[1], int64(ev.Kind), created); err != nil {
			return storage.Result{}, fmt.Errorf("insert tags: %w", err)
		}
	}

	if ev.Kind == 5 {
		if err := w.applyDeletion(ev, pk, created); err != nil {
			return storage.Result{}, err
		}
	}
	return storage.Result{Outcome: storage.Stored, Seq: seq}, nil
}

// replace decides a replaceable or addressable event against the stored
// version of its address, deleting that version when the new one wins.
// done means the event is not to be inserted, with r saying why.
func (w *writeTx) replace(ev *nostr.Event, id, pk []byte, d string, created int64) (r storage.Result, done bool, err error) {
	// Duplicate first, so a re-sent current version is not called superseded.
	dup, err := w.exists(stmtExists, id)
	if err != nil {
		return r, true, fmt.Errorf("check duplicate: %w", err)
	}
	if dup {
		return storage.Result{Outcome: storage.Duplicate}, true, nil
	}
	deleted, err := w.exists(stmtAddrTombstoned, pk, int64(ev.Kind), d, created)
	if err != nil {
		return r, true, fmt.Errorf("check deleted address: %w", err)
	}
	if deleted {
		return storage.Result{Outcome: storage.Deleted}, true, nil
	}

	found, err := w.queryRow(stmtCurrentVersion, pk, int64(ev.Kind), d)
	if err != nil {
		return r, true, fmt.Errorf("find current version: %w", err)
	}
	if !found {
		return r, false, nil
	}
	oldSeq, ok1 := w.row[0].(int64)
	oldCreated, ok2 := w.row[1].(int64)
	oldID, ok3 := w.row[2].([]byte)
	if !ok1 || !ok2 || !ok3 {
		return r, true, fmt.Errorf("find current version: a row of %T, %T, %T", w.row[0], w.row[1], w.row[2])
	}
	// The newest wins; on a created_at tie, the lowest id.
	if oldCreated > created || (oldCreated == created && bytes.Compare(oldID, id) < 0) {
		return storage.Result{Outcome: storage.Superseded}, true, nil
	}
	if err := w.exec(stmtDeleteSeq, oldSeq); err != nil {
		return r, true, fmt.Errorf("delete replaced version: %w", err)
	}
	return r, false, nil
}

// applyDeletion carries out a stored kind 5 (NIP-09): only the deletion's
// author's events are deleted, and tombstones keep them from coming back.
func (w *writeTx) applyDeletion(ev *nostr.Event, pk []byte, created int64) error {
	var target [32]byte
	for _, tag := range ev.Tags {
		if len(tag) < 2 {
			continue
		}
		switch tag[0] {
		case "e":
			if !evkey.DecodeHex32(tag[1], &target) {
				continue
			}
			if err := w.exec(stmtDeleteByID, target[:], pk); err != nil {
				return fmt.Errorf("delete by id: %w", err)
			}
			if err := w.exec(stmtTombstoneID, target[:], pk); err != nil {
				return fmt.Errorf("record deleted id: %w", err)
			}
		case "a":
			kind, author, d, ok := evkey.ParseAddress(tag[1])
			if !ok || author != ev.PubKey {
				continue
			}
			if err := w.exec(stmtDeleteAddress, pk, int64(kind), d, created); err != nil {
				return fmt.Errorf("delete address: %w", err)
			}
			if err := w.exec(stmtTombstoneAddress, pk, int64(kind), d, created); err != nil {
				return fmt.Errorf("record deleted address: %w", err)
			}
		}
	}
	return nil
}

// prepareWriter prepares the Save statements at Open, so that an error in
// them fails Open rather than the first Save.
func (s *Store) prepareWriter(ctx context.Context) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("prepare writer: connection: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*writerConn)
		if !ok {
			return fmt.Errorf("prepare writer: connection is a %T", dc)
		}
		return c.prepare()
	})
}
