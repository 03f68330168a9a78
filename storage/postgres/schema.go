package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/wisp-relay/wisp/storage"
)

// migrations is the ordered list of schema steps. wisp_schema.version counts
// the steps applied; a fresh database runs them all, so fresh and migrated
// databases never differ. Append only: never edit a step once released.
func migrations() []string {
	return []string{
		// 1: events, tags, tombstones, moderation, vanish, search.
		`
-- seq: the insertion sequence number, never reused. Save takes it from the
-- sequence while it holds the write lock (see save.go), so that seq order
-- is commit order.
CREATE SEQUENCE events_seq AS bigint;
CREATE TABLE events (
	seq        bigint   PRIMARY KEY DEFAULT nextval('events_seq'),
	id         bytea    NOT NULL CHECK (length(id) = 32),
	pubkey     bytea    NOT NULL CHECK (length(pubkey) = 32),
	created_at bigint   NOT NULL,
	kind       integer  NOT NULL,
	d_tag      bytea,   -- '' or the d tag for replaceable and addressable kinds, else NULL
	expiration bigint,  -- NIP-40, unix seconds
	raw        bytea    NOT NULL, -- the JSON as sent, served back byte for byte
	search     tsvector -- the words of the content, for kinds in search_kinds (search.go)
);
ALTER SEQUENCE events_seq OWNED BY events.seq;

-- created_at DESC last, so that since/until are range bounds and ORDER BY
-- created_at DESC reads in order (ties on id are sorted incrementally).
CREATE UNIQUE INDEX events_id ON events (id);
CREATE INDEX events_created ON events (created_at DESC);
CREATE INDEX events_pubkey ON events (pubkey, created_at DESC);
CREATE INDEX events_kind ON events (kind, created_at DESC);
CREATE INDEX events_pubkey_kind ON events (pubkey, kind, created_at DESC);
CREATE UNIQUE INDEX events_address ON events (pubkey, kind, d_tag) WHERE d_tag IS NOT NULL;
CREATE INDEX events_expiration ON events (expiration) WHERE expiration IS NOT NULL;
CREATE INDEX events_search ON events USING gin (search) WHERE search IS NOT NULL;

-- Single-letter tags, first value only, one row per distinct (name, value)
-- of an event; kind and created_at copied in so that tag filters are served
-- from tags_value. Values are bytes: a tag may hold anything JSON can.
-- Rows go with their event through the trigger below; a foreign key
-- would do the same but check every inserted tag row, which cost half of
-- a Save batch's time.
CREATE TABLE tags (
	seq        bigint  NOT NULL,
	name       text    NOT NULL,
	value      bytea   NOT NULL,
	kind       integer NOT NULL,
	created_at bigint  NOT NULL,
	PRIMARY KEY (seq, name, value)
);
CREATE INDEX tags_value ON tags (name, value, created_at DESC, kind);
CREATE FUNCTION events_delete_tags() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM tags WHERE seq IN (SELECT seq FROM gone);
	RETURN NULL;
END
$$;
CREATE TRIGGER events_delete_tags AFTER DELETE ON events
	REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION events_delete_tags();

-- NIP-09 e-tag deletions: the event id with the pubkey that asked. Only an
-- event by that pubkey is refused later, so other authors cannot delete.
CREATE TABLE deleted_ids (
	id     bytea NOT NULL,
	pubkey bytea NOT NULL,
	PRIMARY KEY (id, pubkey)
);

-- NIP-09 a-tag deletions: versions of the address created at or before
-- "until" are refused.
CREATE TABLE deleted_addresses (
	pubkey bytea   NOT NULL,
	kind   integer NOT NULL,
	d      bytea   NOT NULL,
	until  bigint  NOT NULL,
	PRIMARY KEY (pubkey, kind, d)
);

-- NIP-62: events of pubkey (and gift wraps p-tagging it) created at or
-- before "until" are gone and refused.
CREATE TABLE vanished (
	pubkey bytea  PRIMARY KEY,
	until  bigint NOT NULL
);

-- NIP-86 moderation lists and settings.
CREATE TABLE moderation (
	list   text NOT NULL, -- banned_pubkeys, allowed_kinds, ... (named by package policy)
	key    text NOT NULL, -- a hex pubkey or id, a kind, an IP address
	reason text NOT NULL DEFAULT '',
	PRIMARY KEY (list, key)
);
CREATE TABLE settings (
	key   text PRIMARY KEY,
	value text NOT NULL
);

-- NIP-50: the kinds whose content is in events.search.
CREATE TABLE search_kinds (kind integer PRIMARY KEY);
`,
	}
}

// Advisory lock keys: (lockClass, one of these). The class keeps wisp's
// keys apart from any other application's in the same database.
const (
	lockClass   = 0x77697370 // "wisp"
	lockMigrate = 1          // session lock: schema migrations, search kinds
	lockWrite   = 2          // transaction lock: every Save (save.go)
)

// migrate brings the database to the newest schema and refuses one written
// by a newer wisp. It holds a session advisory lock on a connection of its
// own meanwhile, so that nodes started together migrate once, one after
// the other; each step runs in its own transaction with the version.
func migrate(ctx context.Context, conn *pgxpool.Conn, steps []string) error {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", lockClass, lockMigrate); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		// An unlock that fails leaves the lock to the session's end; the
		// connection is then dropped so that its end comes now.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, $2)", lockClass, lockMigrate); err != nil {
			conn.Conn().Close(context.Background())
		}
	}()
	version, err := schemaVersion(ctx, conn)
	if err != nil {
		return err
	}
	if version > len(steps) {
		return fmt.Errorf("migrate: schema version %d, this build knows %d: %w", version, len(steps), storage.ErrTooNew)
	}
	for i := version; i < len(steps); i++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if i == 0 {
				if _, err := tx.Exec(ctx, "CREATE TABLE wisp_schema (version integer NOT NULL)"); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, "INSERT INTO wisp_schema (version) VALUES (0)"); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, steps[i]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "UPDATE wisp_schema SET version = $1", i+1)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: step %d: %w", i+1, err)
		}
	}
	return nil
}

// schemaVersion reads wisp_schema.version, 0 for a database without it.
func schemaVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var version int
	err := q.QueryRow(ctx, "SELECT version FROM wisp_schema").Scan(&version)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return version, nil
}
