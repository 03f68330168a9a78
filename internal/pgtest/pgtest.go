// Package pgtest starts a throwaway PostgreSQL server for tests: one per
// test binary, started from TestMain, in a temporary directory on a free
// loopback port, with a fresh database for each test that asks. Without
// PostgreSQL's binaries the tests that need it skip, saying what to install.
//
//	var pg *pgtest.Server
//
//	func TestMain(m *testing.M) {
//		pg = pgtest.Start()
//		code := m.Run()
//		pg.Stop()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		url := pg.Database(t) // skips without PostgreSQL
//		...
//	}
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Install is what a test that skips says to do.
const Install = "install PostgreSQL (Debian: apt-get install postgresql) or put initdb and postgres on PATH"

// RequireEnv, set to 1, makes tests fail rather than skip without
// PostgreSQL: .ci/run sets it once it has installed PostgreSQL, so that CI
// never passes by skipping.
const RequireEnv = "WISP_TEST_REQUIRE_POSTGRES"

// appRole is the unprivileged role that owns the test databases, so that
// tests find any use of a privilege a relay's own role would not have.
const appRole = "wisp"

// Server is a PostgreSQL server started for the tests of one binary.
type Server struct {
	// missing: no binaries, the tests skip; err: the server failed to
	// start, the tests fail. Both nil: running.
	missing error
	err     error

	dir    string // temporary directory: data, log
	bin    binaries
	port   int
	cmd    *exec.Cmd
	exited chan struct{} // closed when the server process has exited

	admin *pgxpool.Pool // superuser connections to the postgres database
	n     atomic.Int64

	// lazy: started by the first test that asks (Lazy), under once.
	lazy bool
	once sync.Once
}

// Start starts a server, or returns one that says why there is none (see
// Database). It never returns nil.
func Start() *Server {
	s := &Server{}
	s.boot()
	return s
}

// Lazy returns a server that starts when a test first asks for a database,
// for a test binary most of whose tests do not need one. Stop it as one
// from Start.
func Lazy() *Server { return &Server{lazy: true} }

func (s *Server) boot() {
	bin, err := findBinaries()
	if err != nil {
		s.missing = err
		return
	}
	s.bin = bin
	if err := s.start(bin); err != nil {
		s.err = err
	}
}

// Replica starts a hot standby of s streaming from it (pg_basebackup -R),
// stopped when t ends, and returns a function giving the replica's URL of
// a database of s (from Database), for reads only. Replicate a server of
// the test's own (Start): the standby replays all of its primary's writes.
func (s *Server) Replica(t testing.TB) func(primaryURL string) string {
	t.Helper()
	s.check(t)
	acc, err := serverAccount()
	if err != nil {
		t.Fatalf("pgtest: replica: %v", err)
	}
	dir, err := tempDir(acc)
	if err != nil {
		t.Fatalf("pgtest: replica: %v", err)
	}
	r := &Server{dir: dir, bin: s.bin}
	t.Cleanup(r.Stop)
	data := filepath.Join(dir, "data")
	backup := exec.Command(filepath.Join(filepath.Dir(s.bin.postgres), "pg_basebackup"),
		"-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", "postgres",
		"-R", "-X", "stream", "--checkpoint=fast", "--no-sync")
	backup.SysProcAttr = &syscall.SysProcAttr{Credential: acc.cred}
	if out, err := backup.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: pg_basebackup: %v\n%s", err, out)
	}
	var errs []error
	for range 5 {
		if err := r.run(s.bin, data, acc); err == nil {
			break
		} else {
			errs = append(errs, err)
		}
	}
	if r.admin == nil {
		t.Fatalf("pgtest: replica: %v", errors.Join(errs...))
	}
	port := strconv.Itoa(r.port)
	return func(primaryURL string) string {
		u, err := url.Parse(primaryURL)
		if err != nil {
			t.Fatalf("pgtest: replica URL: %v", err)
		}
		u.Host = net.JoinHostPort("127.0.0.1", port)
		return u.String()
	}
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() {
	if s.lazy {
		s.once.Do(func() {}) // not started: nothing to stop, and no start after
	}
	s.halt()
}

func (s *Server) halt() {
	if s.admin != nil {
		s.admin.Close()
	}
	if s.cmd != nil {
		// SIGINT is PostgreSQL's fast shutdown: clients are disconnected.
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// Available reports whether a server runs; when not, the error says why.
func (s *Server) Available() error {
	if s.missing != nil {
		return s.missing
	}
	return s.err
}

// AdminURL is the superuser's URL of the postgres database; it skips or
// fails t like Database.
func (s *Server) AdminURL(t testing.TB) string {
	t.Helper()
	s.check(t)
	return s.url("postgres", "postgres")
}

// Database creates a new, empty database owned by an unprivileged role and
// returns its URL; it is dropped when t ends. Without PostgreSQL's binaries
// t is skipped; when the server failed to start, t fails.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	s.check(t)
	name := fmt.Sprintf("test_%d", s.n.Add(1))
	if err := s.adminExec(fmt.Sprintf("CREATE DATABASE %s OWNER %s", name, appRole)); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		// FORCE: a test that failed may have left connections open.
		if err := s.adminExec(fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	return s.url(appRole, name)
}

// Freeze stops the server's processes (SIGSTOP: the postmaster, then every
// backend), as a server that hangs: connections stay open and the kernel
// acknowledges what clients send, but nothing answers. The function it
// returns resumes them (SIGCONT), as t's cleanup also does. Freeze a
// server of the test's own (Start), not the shared one. A test binary
// killed while the server is frozen leaves it stopped (the SIGQUIT of its
// death signal waits for a SIGCONT).
func (s *Server) Freeze(t testing.TB) (thaw func()) {
	t.Helper()
	s.check(t)
	pm := s.cmd.Process.Pid
	if err := syscall.Kill(pm, syscall.SIGSTOP); err != nil {
		t.Fatalf("pgtest: stop the postmaster: %v", err)
	}
	stopped := []int{pm}
	for _, pid := range children(pm) {
		if syscall.Kill(pid, syscall.SIGSTOP) == nil {
			stopped = append(stopped, pid)
		}
	}
	var once sync.Once
	thaw = func() {
		once.Do(func() {
			for _, pid := range stopped {
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}
		})
	}
	t.Cleanup(thaw)
	return thaw
}

// KillListeners waits until want connections to the database at dbURL
// are listening (LISTEN), at most 20 seconds, then terminates their
// backends (pg_terminate_backend), as a lost network or a restarted
// pooler would; it fails t if it finds a different number.
func (s *Server) KillListeners(t testing.TB, dbURL string, want int) {
	t.Helper()
	s.check(t)
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const listening = `FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN %'`
	for {
		var n int
		if err := s.admin.QueryRow(ctx, "SELECT count(*) "+listening, cfg.Database).Scan(&n); err != nil {
			t.Fatalf("pgtest: count listening connections: %v", err)
		}
		if n >= want {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pgtest: %d connections listen on %s, want %d", n, cfg.Database, want)
		case <-time.After(10 * time.Millisecond):
		}
	}
	var killed int
	if err := s.admin.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) "+listening, cfg.Database).Scan(&killed); err != nil {
		t.Fatalf("pgtest: terminate listening connections: %v", err)
	}
	if killed != want {
		t.Fatalf("pgtest: terminated %d listening connections on %s, want %d", killed, cfg.Database, want)
	}
}

// children lists the processes whose parent is pid, from /proc.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after
		// its closing parenthesis.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

func (s *Server) check(t testing.TB) {
	t.Helper()
	if s.lazy {
		s.once.Do(s.boot)
	}
	if s.missing != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("pgtest: no PostgreSQL, and %s=1: %v; %s", RequireEnv, s.missing, Install)
		}
		t.Skipf("pgtest: no PostgreSQL: %v; %s", s.missing, Install)
	}
	if s.err != nil {
		t.Fatalf("pgtest: PostgreSQL did not start: %v", s.err)
	}
}

func (s *Server) url(role, db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(role), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), Path: "/" + db}
	u.RawQuery = "sslmode=disable"
	return u.String()
}

func (s *Server) adminExec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := s.admin.Exec(ctx, sql)
	return err
}

// binaries are the programs the server needs.
type binaries struct{ initdb, postgres string }

// findBinaries looks in Debian's /usr/lib/postgresql/<version>/bin (the
// newest version first), then on PATH.
func findBinaries() (binaries, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		b := binaries{filepath.Join(d, "initdb"), filepath.Join(d, "postgres")}
		if executable(b.initdb) && executable(b.postgres) {
			return b, nil
		}
	}
	var b binaries
	var err error
	if b.initdb, err = exec.LookPath("initdb"); err != nil {
		return b, errors.New("initdb not found in /usr/lib/postgresql/*/bin or on PATH")
	}
	if b.postgres, err = exec.LookPath("postgres"); err != nil {
		return b, errors.New("postgres not found beside initdb")
	}
	return b, nil
}

// version is the major version in /usr/lib/postgresql/<version>/bin.
func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// account is whom the server runs as: the current user, or the postgres
// user when the tests run as root, since PostgreSQL refuses to run as root.
type account struct {
	cred     *syscall.Credential // nil: the current user
	uid, gid int
}

func serverAccount() (account, error) {
	if os.Geteuid() != 0 {
		return account{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return account{}, fmt.Errorf("running as root, and there is no postgres user to run PostgreSQL as (it refuses root): %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return account{}, fmt.Errorf("postgres user: uid %q gid %q", u.Uid, u.Gid)
	}
	return account{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, uid: uid, gid: gid}, nil
}

// tempDir makes a directory the server's account owns and can reach: every
// directory above it must let that account through.
func tempDir(acc account) (string, error) {
	var errs []error
	for _, base := range []string{os.TempDir(), "/tmp", "/var/tmp"} {
		if err := reachable(base, acc); err != nil {
			errs = append(errs, err)
			continue
		}
		dir, err := os.MkdirTemp(base, "wisp-pgtest-")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Chown(dir, acc.uid, acc.gid); err != nil {
			os.RemoveAll(dir)
			errs = append(errs, err)
			continue
		}
		return dir, nil
	}
	return "", fmt.Errorf("no temporary directory the server's user can use: %w", errors.Join(errs...))
}

// reachable checks that acc may search (x) dir and every directory above it.
func reachable(dir string, acc account) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil // cannot tell; let initdb say
		}
		mode := fi.Mode().Perm()
		var can bool
		switch {
		case acc.uid == 0:
			can = true
		case int(st.Uid) == acc.uid:
			can = mode&0o100 != 0
		case int(st.Gid) == acc.gid:
			can = mode&0o010 != 0
		default:
			can = mode&0o001 != 0
		}
		if !can {
			return fmt.Errorf("uid %d cannot enter %s (mode %v)", acc.uid, d, mode)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// start starts the server; on failure it leaves nothing running.
func (s *Server) start(bin binaries) error {
	acc, err := serverAccount()
	if err != nil {
		return err
	}
	dir, err := tempDir(acc)
	if err != nil {
		return err
	}
	s.dir = dir
	ok := false
	defer func() {
		if !ok {
			s.halt()
		}
	}()
	data := filepath.Join(dir, "data")
	// --no-sync only skips flushing initdb's own files: the server itself
	// runs with fsync and synchronous_commit on, PostgreSQL's defaults.
	initdb := exec.Command(bin.initdb, "-D", data, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: acc.cred}
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// Another process may take the free port before the server does: try
	// a few.
	var errs []error
	for range 5 {
		err := s.run(bin, data, acc)
		if err == nil {
			break
		}
		errs = append(errs, err)
	}
	if s.admin == nil {
		return errors.Join(errs...)
	}
	if _, err := s.admin.Exec(context.Background(), "CREATE ROLE "+appRole+" LOGIN"); err != nil {
		return fmt.Errorf("create role: %w", err)
	}
	ok = true
	return nil
}

// run starts the server on a free port and connects to it.
func (s *Server) run(bin binaries, data string, acc account) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	logPath := filepath.Join(s.dir, fmt.Sprintf("server-%d.log", port))
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin.postgres, "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories=", // TCP only: no socket directory to own
		"-c", "max_connections=200",
		"-c", "fsync=on",
		"-c", "synchronous_commit=on")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig: a test binary that dies (a panic, a timeout) takes the
	// server with it; SIGQUIT is PostgreSQL's immediate shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: acc.cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.port, s.cmd, s.exited = port, cmd, exited

	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := ping(ctx, s.url("postgres", "postgres"))
		cancel()
		if err == nil {
			// Creating a database takes a while (it is flushed to disk):
			// tests running in parallel create theirs in parallel.
			s.admin, err = pgxpool.New(context.Background(), s.url("postgres", "postgres"))
			return err
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			s.cmd = nil
			return fmt.Errorf("postgres exited on port %d:\n%s", port, strings.TrimSpace(string(log)))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			s.cmd = nil
			return fmt.Errorf("postgres not ready on port %d: %w", port, err)
		}
	}
}

func ping(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
