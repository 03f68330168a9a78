package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

// Writer statements, prepared once on the writer connection and bound to
// each Save transaction on first use.
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
	}
}

type writeStmts [numStmts]*sql.Stmt

func (ws *writeStmts) prepare(ctx context.Context, db *sql.DB) error {
	for i, q := range writeSQL() {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare writer statement %d: %w", i, err)
		}
		ws[i] = st
	}
	return nil
}

func (ws *writeStmts) close() error {
	var errs []error
	for i, st := range ws {
		if st != nil {
			errs = append(errs, st.Close())
			ws[i] = nil
		}
	}
	return errors.Join(errs...)
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

	// Cancelling ctx rolls the transaction back (database/sql watches it).
	// The statements themselves run without a cancel channel, since with one
	// the driver starts a goroutine per statement.
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("save: begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	w := writeTx{ctx: context.WithoutCancel(ctx), tx: tx, stmts: &s.st, van: &s.vanish}

	if len(items) > loadedBatch && len(s.searchKinds) > 0 {
		s.loadedBatches.Add(1)
	}
	for i := range items {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("save: %w", err)
		}
		r, err := w.save(&items[i], &ks[i])
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				// database/sql rolled back under us: report the cause.
				return nil, fmt.Errorf("save: %w", ctxErr)
			}
			return nil, fmt.Errorf("save event %s: %w", items[i].Event.ID, err)
		}
		results[i] = r
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("save: commit: %w", err)
	}
	s.vanish.commit(w.vanishes)
	return results, nil
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

// writeTx is one Save transaction with its statements bound lazily.
type writeTx struct {
	ctx   context.Context
	tx    *sql.Tx
	stmts *writeStmts
	bound [numStmts]*sql.Stmt

	van      *vanishState       // NIP-62 requests committed earlier
	vanishes map[[32]byte]int64 // and those of this transaction
}

func (w *writeTx) stmt(i int) *sql.Stmt {
	if w.bound[i] == nil {
		w.bound[i] = w.tx.StmtContext(w.ctx, w.stmts[i])
	}
	return w.bound[i]
}

// exists runs a SELECT 1 statement.
func (w *writeTx) exists(i int, args ...any) (bool, error) {
	var one int
	err := w.stmt(i).QueryRowContext(w.ctx, args...).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

func (w *writeTx) exec(i int, args ...any) error {
	_, err := w.stmt(i).ExecContext(w.ctx, args...)
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
	var seq int64
	err := w.stmt(stmtInsertEvent).QueryRowContext(w.ctx, id, pk, created, ev.Kind, dTag, exp, it.Raw).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Result{Outcome: storage.Duplicate}, nil
	}
	if err != nil {
		return storage.Result{}, fmt.Errorf("insert event: %w", err)
	}

	for _, tag := range ev.Tags {
		if len(tag) < 2 || !evkey.IndexedTagName(tag[0]) {
			continue
		}
		if err := w.exec(stmtInsertTag, seq, tag[0], tag[1], ev.Kind, created); err != nil {
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
	deleted, err := w.exists(stmtAddrTombstoned, pk, ev.Kind, d, created)
	if err != nil {
		return r, true, fmt.Errorf("check deleted address: %w", err)
	}
	if deleted {
		return storage.Result{Outcome: storage.Deleted}, true, nil
	}

	var (
		oldSeq, oldCreated int64
		oldID              []byte
	)
	err = w.stmt(stmtCurrentVersion).QueryRowContext(w.ctx, pk, ev.Kind, d).Scan(&oldSeq, &oldCreated, &oldID)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, true, fmt.Errorf("find current version: %w", err)
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
			if err := w.exec(stmtDeleteAddress, pk, kind, d, created); err != nil {
				return fmt.Errorf("delete address: %w", err)
			}
			if err := w.exec(stmtTombstoneAddress, pk, kind, d, created); err != nil {
				return fmt.Errorf("record deleted address: %w", err)
			}
		}
	}
	return nil
}
