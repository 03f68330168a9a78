package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// openTestStore opens a fresh store in t's temporary directory.
func openTestStore(t testing.TB) *Store {
	t.Helper()
	return openTestStoreWith(t, Options{ReadConns: 2})
}

// openTestStoreWith opens a fresh store with opts in t's temporary directory.
func openTestStoreWith(t testing.TB, opts Options) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "db", "wisp.db"), opts)
}

// openTestStoreAt opens the store at path.
func openTestStoreAt(t testing.TB, path string) *Store {
	t.Helper()
	return openAt(t, path, Options{ReadConns: 2})
}

// openAt opens the store at path with opts, closed when the test ends.
func openAt(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}
