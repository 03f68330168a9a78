package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/wisp-relay/wisp/storage"
)

// migrations is the ordered list of schema steps. PRAGMA user_version counts
// the steps applied; a fresh database runs them all, so fresh and migrated
// databases never differ. Append only: never edit a step once released.
func migrations() []string {
	return []string{
		// 1: events, tags and NIP-09 tombstones.
		`
CREATE TABLE events (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: a seq is never reused, so watermarks stay valid after deletes
	id         BLOB    NOT NULL UNIQUE CHECK (length(id) = 32),
	pubkey     BLOB    NOT NULL CHECK (length(pubkey) = 32),
	created_at INTEGER NOT NULL,
	kind       INTEGER NOT NULL,
	d_tag      TEXT,    -- '' or the d tag for replaceable and addressable kinds, else NULL
	expiration INTEGER, -- NIP-40, unix seconds
	raw        TEXT    NOT NULL -- canonical JSON, served back byte for byte
) STRICT;

-- Every index ends in created_at DESC so that since/until are range bounds
-- and ORDER BY created_at DESC LIMIT n reads the index in order.
CREATE INDEX events_created    ON events (created_at DESC);
CREATE INDEX events_pubkey     ON events (pubkey, created_at DESC);
CREATE INDEX events_kind       ON events (kind, created_at DESC);
CREATE INDEX events_pubkey_kind ON events (pubkey, kind, created_at DESC);
CREATE UNIQUE INDEX events_address ON events (pubkey, kind, d_tag) WHERE d_tag IS NOT NULL;
CREATE INDEX events_expiration ON events (expiration) WHERE expiration IS NOT NULL;

-- Single-letter tags, first value only, one row per distinct (name, value)
-- of an event. kind and created_at are copied in so that tag filters are
-- served from these indexes alone. WITHOUT ROWID: the primary key doubles as
-- the seq index that ON DELETE CASCADE needs, and the value indexes carry seq.
CREATE TABLE tags (
	seq        INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
	name       TEXT    NOT NULL,
	value      TEXT    NOT NULL,
	kind       INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (seq, name, value)
) STRICT, WITHOUT ROWID;

-- kind trails created_at so that tag+kind filters are checked inside the
-- index while it is read in order; a second (name, value, kind, created_at)
-- index would serve them slightly better but costs a third of ingest speed.
CREATE INDEX tags_value ON tags (name, value, created_at DESC, kind);

-- NIP-09 e-tag deletions: the event id with the pubkey that asked. Only an
-- event by that pubkey is refused later, so other authors cannot delete.
CREATE TABLE deleted_ids (
	id     BLOB NOT NULL,
	pubkey BLOB NOT NULL,
	PRIMARY KEY (id, pubkey)
) STRICT, WITHOUT ROWID;

-- NIP-09 a-tag deletions: versions of the address created at or before
-- "until" are refused.
CREATE TABLE deleted_addresses (
	pubkey BLOB    NOT NULL,
	kind   INTEGER NOT NULL,
	d      TEXT    NOT NULL,
	until  INTEGER NOT NULL,
	PRIMARY KEY (pubkey, kind, d)
) STRICT, WITHOUT ROWID;
`,
		// 2: moderation lists and settings (NIP-86), requests to vanish (NIP-62).
		`
CREATE TABLE moderation (
	list   TEXT NOT NULL, -- banned_pubkeys, allowed_kinds, ... (named by package policy)
	key    TEXT NOT NULL, -- a hex pubkey or id, a kind, an IP address
	reason TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (list, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE settings (
	key   TEXT NOT NULL PRIMARY KEY,
	value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- NIP-62: events of pubkey (and gift wraps p-tagging it) created at or
-- before "until" are gone and refused.
CREATE TABLE vanished (
	pubkey BLOB    NOT NULL PRIMARY KEY,
	until  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`,
		// 3: NIP-50 search index and a running count of events.
		`
-- The content of events of the kinds in search_kinds, keyed by seq (docid).
-- Triggers keep it in step with events in the same transaction; Open fills
-- or empties it when the configured kinds change. unicode61 without
-- diacritics removal: words match ignoring case, accents must match.
CREATE VIRTUAL TABLE events_search USING fts4(content, tokenize=unicode61 "remove_diacritics=0");
-- Merge index segments a little on every write instead of all at once.
INSERT INTO events_search (events_search) VALUES ('automerge=8');
CREATE TABLE search_kinds (kind INTEGER PRIMARY KEY) STRICT;
CREATE TRIGGER events_search_insert AFTER INSERT ON events
	WHEN new.kind IN (SELECT kind FROM search_kinds)
BEGIN
	INSERT INTO events_search (docid, content) VALUES (new.seq, json_extract(new.raw, '$.content'));
END;
CREATE TRIGGER events_search_delete AFTER DELETE ON events
BEGIN
	DELETE FROM events_search WHERE docid = old.seq;
END;

-- The number of stored events (expired ones included until they are
-- purged), so that counting everything needs no scan.
CREATE TABLE event_count (n INTEGER NOT NULL) STRICT;
INSERT INTO event_count (n) SELECT count(*) FROM events;
CREATE TRIGGER events_count_insert AFTER INSERT ON events
BEGIN
	UPDATE event_count SET n = n + 1;
END;
CREATE TRIGGER events_count_delete AFTER DELETE ON events
BEGIN
	UPDATE event_count SET n = n - 1;
END;
`,
		// 4: the search index follows the events instead of being written
		// with them (see search.go): the insert trigger cost the single
		// writer more than storing the event did.
		`
DROP TRIGGER events_search_insert;
-- indexed: every event with seq <= indexed of a kind in search_kinds is in
-- events_search; the events above it (the tail) are searched without the
-- index until IndexSearch gets to them. The trigger indexed everything so far.
CREATE TABLE search_state (indexed INTEGER NOT NULL) STRICT;
INSERT INTO search_state (indexed) SELECT coalesce(max(seq), 0) FROM events;
`,
		// 5: the expiration of an event with several expiration tags is the
		// earliest (storage.Expiration); it used to be the first. Only rows
		// with an expiration can differ: every event was checked by the
		// relay, which refuses a malformed expiration tag, so the first tag
		// was well formed whenever there was one. The partial index finds
		// those rows; the rest are not read.
		`
UPDATE events SET expiration = (
	SELECT min(CAST(t.value ->> '$[1]' AS INTEGER)) FROM json_each(events.raw, '$.tags') AS t
	WHERE t.value ->> '$[0]' = 'expiration' AND json_type(t.value, '$[1]') = 'text'
		AND t.value ->> '$[1]' GLOB '[0-9]*' AND t.value ->> '$[1]' NOT GLOB '*[^0-9]*'
) WHERE expiration IS NOT NULL;
`,
	}
}

// migrate brings the database to the newest schema in one write transaction
// (BEGIN IMMEDIATE, so two processes cannot both migrate), and refuses a
// database written by a newer wisp.
func migrate(ctx context.Context, db *sql.DB) error {
	steps := migrations()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit

	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("migrate: read user_version: %w", err)
	}
	if version > len(steps) {
		return fmt.Errorf("migrate: schema version %d, this build knows %d: %w",
			version, len(steps), storage.ErrTooNew)
	}
	if version == len(steps) {
		return nil
	}
	for i := version; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return fmt.Errorf("migrate: step %d: %w", i+1, err)
		}
	}
	// PRAGMA takes no bound parameters; the value is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(steps))); err != nil {
		return fmt.Errorf("migrate: set user_version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}
