package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The data directory: wisp checks that it can write there before SQLite
// tries (whose "unable to open database file" names neither the directory
// nor the user), and wisp serve locks it so that a second serve is refused.

// lockFile is the file in the data directory that wisp serve locks.
const lockFile = "wisp.lock"

// prepareDataDir creates the data directory if needed and checks that this
// process may write there: the directory itself (SQLite creates the WAL and
// shared-memory files beside the database) and the database files already
// in it. The error says who wisp runs as and who owns what it cannot write.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			parent := existingParent(dir)
			return fmt.Errorf("cannot create the data directory %s: %s is not writable by %s: it is %s; create %s and give it to %s, or set WISP_DATA_DIR",
				dir, parent, whoAmI(), describeOwner(parent), dir, whoAmI())
		}
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := writable(dir); err != nil {
		return fmt.Errorf("the data directory %s is not writable by %s: it is %s (%w); %s", dir, whoAmI(), describeOwner(dir), err, fixOwnership(dir))
	}
	for _, name := range []string{"wisp.db", "wisp.db-wal", "wisp.db-shm"} {
		path := filepath.Join(dir, name)
		if _, err := os.Lstat(path); err != nil {
			continue // SQLite creates it
		}
		if err := writable(path); err != nil {
			return fmt.Errorf("the database file %s is not writable by %s: it is %s (%w); %s", path, whoAmI(), describeOwner(path), err, fixOwnership(dir))
		}
	}
	return nil
}

// writable asks the kernel whether this process may write path: the
// permission bits, its owner and group, and a read-only mount (EROFS).
func writable(path string) error {
	const wOK, xOK = 2, 1
	mode := uint32(wOK)
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		mode |= xOK // to create files in it
	}
	if err := syscall.Access(path, mode); err != nil {
		if errors.Is(err, syscall.EROFS) {
			return errors.New("the file system is mounted read-only")
		}
		return err
	}
	return nil
}

// fixOwnership is the advice for a data directory wisp cannot write.
func fixOwnership(dir string) string {
	uid := os.Getuid()
	return fmt.Sprintf("give it to uid %d (chown -R %d %s, on the host for a bind mount) or run wisp as its owner", uid, uid, dir)
}

// existingParent is the nearest directory above path that exists.
func existingParent(path string) string {
	p := filepath.Clean(path)
	for {
		parent := filepath.Dir(p)
		if _, err := os.Stat(parent); err == nil || parent == p {
			return parent
		}
		p = parent
	}
}

// whoAmI names the user this process runs as: "uid 10001 (wisp)".
func whoAmI() string {
	return describeUID(os.Getuid())
}

func describeUID(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return fmt.Sprintf("uid %d (%s)", uid, u.Username)
	}
	return fmt.Sprintf("uid %d", uid)
}

// describeOwner says who owns path and its mode: "owned by uid 0 (root),
// group 0, mode drwxr-xr-x".
func describeOwner(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return "mode " + st.Mode().String()
	}
	return fmt.Sprintf("owned by %s, group %d, mode %s", describeUID(int(sys.Uid)), sys.Gid, st.Mode())
}

// dataLock is wisp serve's hold on its data directory: an exclusive
// flock(2) on DATA_DIR/wisp.lock, which the kernel drops when the process
// ends however it ends, so a crash leaves no stale lock. The other
// commands (import, sync, mirror, scan, delete, backup, stats) do not take
// it: SQLite lets them share the database with the relay.
//
// A flock belongs to the open file description, so a process that starts
// its successor with the file among its inherited descriptors (a
// zero-downtime upgrade) hands the lock over with it: File returns it.
type dataLock struct{ f *os.File }

// lockDataDir takes the data directory's lock, or says who holds it.
func lockDataDir(dir string) (*dataLock, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := strings.TrimSpace(string(holder))
			if who == "" {
				who = "another process"
			}
			return nil, fmt.Errorf("the data directory %s is in use by another wisp serve (%s); one wisp serve per data directory: stop it, or give this one its own WISP_DATA_DIR (import, export, sync, mirror, scan, delete, backup and stats may run beside it)", dir, who)
		}
		return nil, fmt.Errorf("lock the data directory %s: %w", path, err)
	}
	l := &dataLock{f: f}
	l.claim()
	return l, nil
}

// claim writes who holds the lock, for the message of the next one that
// tries: this process, also when it took the lock over in an upgrade.
func (l *dataLock) claim() {
	if err := l.f.Truncate(0); err == nil {
		l.f.WriteAt(fmt.Appendf(nil, "pid %d, started %s\n", os.Getpid(), time.Now().UTC().Format(time.RFC3339)), 0) //nolint:errcheck // only a hint
	}
}

// File is the locked file, to hand to a successor process; nil without
// a lock (PostgreSQL), which the successor then does not take.
func (l *dataLock) File() *os.File {
	if l == nil {
		return nil
	}
	return l.f
}

// release drops the lock; nothing without one.
func (l *dataLock) release() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}

// dataDirServed reports whether a wisp serve holds dir's lock, without
// holding it for longer than the question: a shared lock that cannot be
// had means an exclusive one is held.
func dataDirServed(dir string) (bool, error) {
	f, err := os.Open(filepath.Join(dir, lockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	switch {
	case errors.Is(err, syscall.EWOULDBLOCK):
		return true, nil
	case err != nil:
		return false, err
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // Close drops it anyway
	return false, nil
}
