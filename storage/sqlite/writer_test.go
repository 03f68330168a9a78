package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wisp-relay/wisp/storage"
)

// writerConnOf returns the writer's driver connection.
func writerConnOf(t *testing.T, s *Store) *writerConn {
	t.Helper()
	conn, err := s.w.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var wc *writerConn
	if err := conn.Raw(func(dc any) error { wc = dc.(*writerConn); return nil }); err != nil {
		t.Fatal(err)
	}
	return wc
}

// openFilesUnder counts this process's file descriptors open on files
// whose path starts with prefix (the database, its WAL and shared memory).
func openFilesUnder(t *testing.T, prefix string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, prefix) {
			n++
		}
	}
	return n
}

// TestWriterConnectionReplaced: database/sql throws the writer connection
// away after a transaction whose context is cancelled (moderation and the
// search indexer write through it too). The Save statements prepared on
// the old connection must be finalized with it, exactly once, or SQLite
// keeps it open as a zombie; the new connection prepares its own, and
// Close leaves no file of the database open.
func TestWriterConnectionReplaced(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts open files through /proc")
	}
	path := filepath.Join(t.TempDir(), "wisp.db")
	s, err := Open(context.Background(), path, Options{ReadConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	c := newCorpus(10)
	first := []storage.Item{c.item(), c.item()}
	if _, err := s.Save(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	old := writerConnOf(t, s)

	// A write transaction cancelled while open: database/sql rolls it back
	// and closes the connection.
	ctx, cancel := context.WithCancel(context.Background())
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	// database/sql notices the cancellation on a goroutine of its own; a
	// Rollback of ours before that would keep the connection.
	for i := 0; ; i++ {
		if _, err := tx.Exec("SELECT 1"); errors.Is(err, sql.ErrTxDone) {
			break
		}
		if i == 10_000 {
			t.Fatal("the cancelled transaction is still open")
		}
		time.Sleep(time.Millisecond)
	}

	second := []storage.Item{c.item(), c.item()}
	res, err := s.Save(context.Background(), second)
	if err != nil {
		t.Fatalf("save on the new connection: %v", err)
	}
	for i, r := range res {
		if r.Outcome != storage.Stored {
			t.Errorf("event %d: outcome %v, want stored", i, r.Outcome)
		}
	}
	if now := writerConnOf(t, s); now == old {
		t.Fatal("the writer connection was not replaced; the test tests nothing")
	}
	for _, it := range append(first, second...) {
		if ok, err := s.Has(context.Background(), it.Event.ID); err != nil || !ok {
			t.Errorf("has %s: %v, %v", it.Event.ID, ok, err)
		}
	}

	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// database/sql closes the discarded connection on the goroutine that
	// noticed the cancellation, which may still be at it.
	for i := 0; ; i++ {
		n := openFilesUnder(t, path)
		if n == 0 {
			break
		}
		if i == 5000 {
			t.Fatalf("%d files of the database still open after Close", n)
		}
		time.Sleep(time.Millisecond)
	}
}
