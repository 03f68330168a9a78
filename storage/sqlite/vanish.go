package sqlite

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

// KindVanish is NIP-62's request to vanish.
const KindVanish = 62

// kindGiftWrap is NIP-59's gift wrap.
const kindGiftWrap = 1059

// vanishState remembers NIP-62 requests: pubkey -> the created_at up to
// which its events (and gift wraps p-tagging it) are gone for good. The
// table is small and read for every saved event, so it is kept in memory;
// it is loaded at Open and changed only after a Save commits.
type vanishState struct {
	mu    sync.RWMutex
	until map[[32]byte]int64
}

func (v *vanishState) load(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT pubkey, until FROM vanished`)
	if err != nil {
		return fmt.Errorf("load vanished pubkeys: %w", err)
	}
	defer rows.Close()
	m := map[[32]byte]int64{}
	for rows.Next() {
		var pk []byte
		var until int64
		if err := rows.Scan(&pk, &until); err != nil {
			return fmt.Errorf("load vanished pubkeys: %w", err)
		}
		var k [32]byte
		copy(k[:], pk)
		m[k] = until
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load vanished pubkeys: %w", err)
	}
	v.mu.Lock()
	v.until = m
	v.mu.Unlock()
	return nil
}

func (v *vanishState) get(pk [32]byte) (int64, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	u, ok := v.until[pk]
	return u, ok
}

// commit merges the requests of a committed transaction.
func (v *vanishState) commit(pending map[[32]byte]int64) {
	if len(pending) == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.until == nil {
		v.until = map[[32]byte]int64{}
	}
	for k, u := range pending {
		if u > v.until[k] {
			v.until[k] = u
		}
	}
}

// vanishedUntil is the vanish horizon of pk as this transaction sees it.
func (w *writeTx) vanishedUntil(pk [32]byte) (int64, bool) {
	u, ok := w.van.get(pk)
	if p, pok := w.vanishes[pk]; pok && (!ok || p > u) {
		return p, true
	}
	return u, ok
}

// vanished reports whether ev is refused by an earlier request to vanish:
// its author vanished at or after its created_at, or it is a gift wrap
// p-tagging a pubkey that did. A request to vanish itself is never refused,
// so sending it again is harmless.
func (w *writeTx) vanished(ev *nostr.Event, k *keys, created int64) bool {
	if ev.Kind == KindVanish {
		return false
	}
	if u, ok := w.vanishedUntil(k.pubkey); ok && created <= u {
		return true
	}
	if ev.Kind == kindGiftWrap {
		var p [32]byte
		for _, tag := range ev.Tags {
			if len(tag) >= 2 && tag[0] == "p" && evkey.DecodeHex32(tag[1], &p) {
				if u, ok := w.vanishedUntil(p); ok && created <= u {
					return true
				}
			}
		}
	}
	return false
}

// applyVanish carries out a request to vanish (NIP-62) inside the save
// transaction, before the request itself is inserted: every event of the
// pubkey up to its created_at goes, kind 5 included, and so does every gift
// wrap p-tagging it. Earlier requests to vanish stay, as the record NIP-62
// allows, so that sending one again is a plain duplicate. The store does this for every kind 62 it is given; the
// caller checks that the request names this relay.
func (w *writeTx) applyVanish(pk []byte, key [32]byte, created int64) (err error) {
	// NIP-62 asks for true deletion: freed pages are overwritten with zeros
	// rather than left in the file (old copies in the WAL go at the next
	// checkpoint).
	if err := setSecureDelete(context.Background(), w, true); err != nil {
		return err
	}
	defer func() {
		if serr := setSecureDelete(context.Background(), w, false); err == nil {
			err = serr
		}
	}()
	if err := w.execSQL(`DELETE FROM events WHERE pubkey = ? AND created_at <= ? AND kind != ?`, pk, created, int64(KindVanish)); err != nil {
		return fmt.Errorf("vanish: delete events: %w", err)
	}
	if err := w.execSQL(`DELETE FROM events WHERE seq IN (
		SELECT seq FROM tags WHERE name = 'p' AND value = ? AND created_at <= ? AND kind = ?)`,
		hex.EncodeToString(pk), created, int64(kindGiftWrap)); err != nil {
		return fmt.Errorf("vanish: delete gift wraps: %w", err)
	}
	if err := w.execSQL(`INSERT INTO vanished (pubkey, until) VALUES (?, ?)
		ON CONFLICT (pubkey) DO UPDATE SET until = max(until, excluded.until)`, pk, created); err != nil {
		return fmt.Errorf("vanish: record: %w", err)
	}
	if w.vanishes == nil {
		w.vanishes = map[[32]byte]int64{}
	}
	if created > w.vanishes[key] {
		w.vanishes[key] = created
	}
	return nil
}

// vanishedResult is the outcome of an event refused by a request to vanish.
var vanishedResult = storage.Result{Outcome: storage.Deleted}

// execer is a transaction or a connection.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// ExecContext makes a Save transaction an execer (its result is not
// reported); the driver connection runs query without ctx.
func (w *writeTx) ExecContext(_ context.Context, query string, args ...any) (sql.Result, error) {
	return nil, w.execSQL(query, args...)
}

// setSecureDelete turns SQLite's secure_delete on or off for the writer
// connection; it may change inside a transaction.
func setSecureDelete(ctx context.Context, e execer, on bool) error {
	q := "PRAGMA secure_delete = OFF"
	if on {
		q = "PRAGMA secure_delete = ON"
	}
	if _, err := e.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("secure delete: %w", err)
	}
	return nil
}
