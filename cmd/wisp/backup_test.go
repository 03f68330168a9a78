package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wisp-relay/wisp/storage/sqlite"
)

// buildWisp builds the wisp binary into a temporary directory.
func buildWisp(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "wisp")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// bigDatabase makes a wisp database in dir padded to 256 MiB, so that a
// backup takes long enough to be interrupted in its VACUUM INTO.
func bigDatabase(t *testing.T, dir string) {
	t.Helper()
	path := filepath.Join(dir, "wisp.db")
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{ReadConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE padding (b BLOB);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 256)
		INSERT INTO padding SELECT zeroblob(1048576) FROM n`); err != nil {
		t.Fatal(err)
	}
}

// startBackup runs "wisp backup dest" from the built binary.
func startBackup(t *testing.T, bin, dataDir, dest string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, "backup", dest)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "WISP_DATA_DIR="+dataDir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) //nolint:errcheck // a no-op once it has exited
	return cmd, &out
}

// backupTemps lists the hidden temporary files in dir (.wisp-backup-*.tmp
// and its journal are).
func backupTemps(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, ".*.tmp*"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// waitForCopying waits until a backup writes its temporary copy in dir,
// that is until its VACUUM INTO is under way, and returns the file.
func waitForCopying(t *testing.T, dir string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, name := range backupTemps(t, dir) {
			if st, err := os.Stat(name); err == nil && strings.HasSuffix(name, ".tmp") && st.Size() > 0 {
				return name
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no temporary copy appeared in %s", dir)
	return ""
}

// A backup killed outright leaves its temporary copy; the next backup into
// the same directory removes it, and says so.
func TestBackupRemovesCopyOfKilledBackup(t *testing.T) {
	bin := buildWisp(t)
	data, out := t.TempDir(), t.TempDir()
	bigDatabase(t, data)

	cmd, _ := startBackup(t, bin, data, filepath.Join(out, "killed.db"))
	tmp := waitForCopying(t, out)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() //nolint:errcheck // killed
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("the killed backup left no temporary copy (%v): nothing to test", err)
	}

	var stdout, stderr bytes.Buffer
	dest := filepath.Join(out, "next.db")
	if err := run(t.Context(), []string{"backup", dest}, []string{"WISP_DATA_DIR=" + data}, nil, &stdout, &stderr, nil); err != nil {
		t.Fatalf("next backup: %v\n%s", err, stderr.String())
	}
	if left := backupTemps(t, out); len(left) > 0 {
		t.Errorf("temporary files left after the next backup: %v", left)
	}
	if !strings.Contains(stdout.String(), "removed "+tmp+", left by a backup that was killed") {
		t.Errorf("the next backup does not say what it removed:\n%s", stdout.String())
	}
	if _, err := os.Stat(dest); err != nil {
		t.Errorf("next backup: %v", err)
	}
}

// SIGTERM in the middle of a backup stops it and removes its temporary copy.
func TestBackupSIGTERMRemovesCopy(t *testing.T) {
	bin := buildWisp(t)
	data, out := t.TempDir(), t.TempDir()
	bigDatabase(t, data)

	dest := filepath.Join(out, "stopped.db")
	cmd, output := startBackup(t, bin, data, dest)
	waitForCopying(t, out)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(output.String(), context.Canceled.Error()) {
		t.Fatalf("backup after SIGTERM: %v\n%s", err, output)
	}
	if left := backupTemps(t, out); len(left) > 0 {
		t.Errorf("temporary files left after SIGTERM: %v", left)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stopped backup wrote %s (%v)", dest, err)
	}
}
