package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

var pg *Server

func TestMain(m *testing.M) {
	pg = Start()
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// Each test gets its own empty database, owned by a role that is not a
// superuser, on a server that keeps PostgreSQL's durable defaults.
func TestDatabase(t *testing.T) {
	ctx := context.Background()
	a, b := pg.Database(t), pg.Database(t)
	if a == b {
		t.Fatalf("two tests share %s", a)
	}
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var super, fsync, syncCommit string
	var tables int
	if err := conn.QueryRow(ctx, `SELECT current_setting('is_superuser'), current_setting('fsync'),
		current_setting('synchronous_commit'), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).
		Scan(&super, &fsync, &syncCommit, &tables); err != nil {
		t.Fatal(err)
	}
	if super != "off" || fsync != "on" || syncCommit != "on" || tables != 0 {
		t.Errorf("superuser %s, fsync %s, synchronous_commit %s, %d tables", super, fsync, syncCommit, tables)
	}
	// The role may create what a relay's schema needs.
	if _, err := conn.Exec(ctx, "CREATE TABLE x (a int)"); err != nil {
		t.Errorf("create table: %v", err)
	}
}

func TestMissingBinariesSkip(t *testing.T) {
	t.Setenv(RequireEnv, "")
	s := &Server{missing: os.ErrNotExist}
	ran := false
	t.Run("skipped", func(t *testing.T) {
		defer func() { ran = true }()
		s.Database(t)
		t.Error("Database returned without a server")
	})
	if !ran {
		t.Fatal("subtest did not run")
	}
}
