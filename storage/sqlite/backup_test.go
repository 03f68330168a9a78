package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// A backup taken while batches keep being written opens as a database and
// holds every event whose Save had returned before the backup began.
func TestBackupDuringWrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wisp.db")
	s := openSearchStore(t, path, []int{1})
	defer s.Close()
	ctx := context.Background()

	var (
		mu    sync.Mutex
		acked []string
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	sk := nostr.GeneratePrivateKey()
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var batch []storage.Item
			for j := range 20 {
				batch = append(batch, signed(t, sk, 1, int64(i*20+j), fmt.Sprintf("note %d %d", i, j)))
			}
			if _, err := s.Save(ctx, batch); err != nil {
				t.Errorf("save: %v", err)
				return
			}
			mu.Lock()
			for _, it := range batch {
				acked = append(acked, it.Event.ID)
			}
			mu.Unlock()
		}
	})
	waitFor := func(n int) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			got := len(acked)
			mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d events written", got)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(200)
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	dest := filepath.Join(dir, "backup", "copy.db")
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		t.Fatal(err)
	}
	info, err := Backup(ctx, path, dest)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	waitFor(len(before) + 100) // writes went on
	close(stop)
	wg.Wait()

	if info.Events < int64(len(before)) || info.Bytes == 0 {
		t.Errorf("backup info %+v; %d events acknowledged before", info, len(before))
	}
	b, err := Open(ctx, dest, Options{})
	if err != nil {
		t.Fatalf("open backup: %v", err)
	}
	defer b.Close()
	for _, id := range before {
		if ok, err := b.Has(ctx, id); !ok || err != nil {
			t.Fatalf("backup misses acknowledged event %s (%v)", id, err)
		}
	}
	if n, _, err := b.Count(ctx, []nostr.Filter{{}}); err != nil || n != info.Events {
		t.Errorf("backup counts %d (%v), info says %d", n, err, info.Events)
	}
	// The copy keeps the search index and its configuration.
	if k := b.SearchKinds(); len(k) != 1 || k[0] != 1 {
		t.Errorf("backup search kinds %v", k)
	}
	if n, _, err := b.Count(ctx, []nostr.Filter{{Search: "note"}}); err != nil || n != info.Events {
		t.Errorf("backup search count %d (%v), want %d", n, err, info.Events)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(dest), ".*tmp"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestBackupRefusesExistingFile(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t)
	dest := filepath.Join(dir, "there.db")
	if err := os.WriteFile(dest, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Backup(context.Background(), s.file, dest); !errors.Is(err, ErrExists) {
		t.Errorf("backup over a file: %v", err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "precious" {
		t.Error("backup overwrote a file")
	}
	if _, err := Backup(context.Background(), filepath.Join(dir, "missing.db"), filepath.Join(dir, "x.db")); err == nil {
		t.Error("backup of a missing database succeeded")
	}
}

// A backup of a closed database (no WAL, no shared memory file) works too.
func TestBackupClosedDatabase(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wisp.db")
	s := openSearchStore(t, path, nil)
	sk := nostr.GeneratePrivateKey()
	if _, err := s.Save(context.Background(), []storage.Item{signed(t, sk, 1, 1, "x")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	info, err := Backup(context.Background(), path, filepath.Join(dir, "copy.db"))
	if err != nil || info.Events != 1 {
		t.Fatalf("backup: %+v %v", info, err)
	}
}

// A backup removes the temporary files that killed backups left in its
// directory (no lock on them), and leaves a running backup's (locked) and
// files that are not backups'.
func TestBackupRemovesStaleTemporaryFiles(t *testing.T) {
	s := openTestStore(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := write(".wisp-backup-111.tmp", "half a copy")
	staleJournal := write(".wisp-backup-111.tmp-journal", "its journal")
	running := write(".wisp-backup-222.tmp", "a copy being written")
	// Empty and unlocked: killed before its VACUUM INTO began when old,
	// a backup about to lock it when new.
	emptyOld, emptyNew := write(".wisp-backup-444.tmp", ""), write(".wisp-backup-555.tmp", "")
	long := time.Now().Add(-2 * freshTempAge)
	if err := os.Chtimes(emptyOld, long, long); err != nil {
		t.Fatal(err)
	}
	others := []string{write(".notes.tmp", "not a backup"), write("wisp-backup-333.tmp", "not hidden: not ours"), emptyNew}
	// A running backup holds a lock on its file, here from this process.
	f, err := os.Open(running)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if locked, err := tryLock(f); err != nil || !locked {
		t.Fatalf("lock: %v %v", locked, err)
	}

	dest := filepath.Join(dir, "copy.db")
	info, err := Backup(t.Context(), s.file, dest)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	for _, p := range []string{stale, staleJournal, emptyOld} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s of a killed backup is still there (%v)", filepath.Base(p), err)
		}
	}
	if want := []string{stale, emptyOld}; !slices.Equal(info.Stale, want) {
		t.Errorf("reported stale files %v, want %v", info.Stale, want)
	}
	for _, p := range append(others, running, dest) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
}

// Backups running at once into one directory never take each other's
// temporary file for a stale one.
func TestConcurrentBackupsOneDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	s := openSearchStore(t, path, nil)
	defer s.Close()
	sk := nostr.GeneratePrivateKey()
	var batch []storage.Item
	for i := range 2000 {
		batch = append(batch, signed(t, sk, 1, int64(i), fmt.Sprintf("note %d", i)))
	}
	if _, err := s.Save(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			for j := range 5 {
				info, err := Backup(t.Context(), path, filepath.Join(dir, fmt.Sprintf("copy-%d-%d.db", i, j)))
				if err != nil {
					t.Errorf("backup %d/%d: %v", i, j, err)
				} else if info.Events != 2000 || len(info.Stale) > 0 {
					t.Errorf("backup %d/%d: %+v", i, j, info)
				}
			}
		})
	}
	wg.Wait()
	if left, _ := filepath.Glob(filepath.Join(dir, ".wisp-backup-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// BackupProgress reports the copy's size against the database's pages in
// use, ending with the whole copy.
func TestBackupProgress(t *testing.T) {
	s := openTestStore(t)
	k := newTestKey(t)
	var evs []*nostr.Event
	for i := range 500 {
		evs = append(evs, k.event(t, 1, time.Now().Unix()-int64(i), strings.Repeat("x", 1000)))
	}
	saveAll(t, s, evs...)
	dest := filepath.Join(t.TempDir(), "copy.db")
	var last, total int64
	calls := 0
	info, err := BackupProgress(context.Background(), s.file, dest, func(w, tot int64) { calls, last, total = calls+1, w, tot })
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || last != info.Bytes || total < info.Bytes/2 || total > 4*info.Bytes {
		t.Errorf("%d calls, last %d of %d; the copy has %d bytes", calls, last, total, info.Bytes)
	}
}
