package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const healthUsage = `Usage: wisp health [--timeout 5s]

Checks the relay that WISP_LISTEN and WISP_DATA_DIR describe, as a
container's HEALTHCHECK or a monitor would, and exits 0 when it is
healthy, 1 (with the reason) when not:

  - the relay answers its NIP-11 document at WISP_LISTEN (0.0.0.0 and ::
    are asked on loopback) within --timeout;
  - a wisp serve holds the data directory (its wisp.lock), so that the
    relay answering is the one using this store;
  - the store can be written: the data directory takes a new 4 KiB file
    (created and removed again), the database files are writable by this
    user, the file system is not read-only and has at least 1 MiB free.

On PostgreSQL (WISP_DATABASE_URL) the last two are: the database answers
and is a primary (not in recovery), so it accepts writes.

It never opens the SQLite database: it takes none of SQLite's locks, so the
relay's writer never waits for it, and it writes nothing the relay reads.
What it cannot see is a database the relay fails to write for reasons of
its own (corruption): wisp_write_batch_errors_total counts those.
`

// minFreeBytes is the free space below which the store counts as not
// writable: SQLite needs room to grow the write-ahead log.
const minFreeBytes = 1 << 20

// runHealth is "wisp health".
func runHealth(ctx context.Context, args, environ []string, stdout io.Writer) error {
	fs := newFlags("health")
	timeout := fs.Duration("timeout", 5*time.Second, "longest wait for the relay")
	rest, err := parseFlags(fs, args)
	if err != nil || rest == nil {
		return helpOr(err, stdout, healthUsage)
	}
	if len(rest) > 0 {
		return &usageError{"health", fmt.Sprintf("health takes no arguments, got %q", rest)}
	}
	if *timeout <= 0 {
		return &usageError{"health", "health: --timeout must be positive"}
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	url, software, err := askNIP11(ctx, cfg.Listen)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	if cfg.usesPostgres() {
		where, err := primaryWritable(ctx, cfg.DatabaseURL)
		if err != nil {
			return fmt.Errorf("unhealthy: %s answers, but %w", url, err)
		}
		_, err = fmt.Fprintf(stdout, "healthy: %s answers NIP-11 (%s); PostgreSQL %s accepts writes\n", url, software, where)
		return err
	}
	served, err := dataDirServed(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("unhealthy: read the lock of the data directory %s: %w", cfg.DataDir, err)
	}
	if !served {
		return fmt.Errorf("unhealthy: %s answers, but no wisp serve holds the data directory %s: is WISP_DATA_DIR the relay's?", url, cfg.DataDir)
	}
	free, err := storeWritable(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("unhealthy: the store cannot be written: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "healthy: %s answers NIP-11 (%s); %s is writable by %s, %s free\n", url, software, cfg.DataDir, whoAmI(), byteSize(free))
	return err
}

// askNIP11 fetches the relay's NIP-11 document at the address it listens
// on and returns the URL asked and the software it names.
func askNIP11(ctx context.Context, listen string) (url, software string, err error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", "", fmt.Errorf("WISP_LISTEN=%q: %w", listen, err)
	}
	if port == "0" {
		return "", "", fmt.Errorf("WISP_LISTEN=%q picks a free port at start: health cannot know which", listen)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // every interface includes loopback
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	url = "http://" + net.JoinHostPort(host, port) + "/"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return url, "", err
	}
	req.Header.Set("Accept", "application/nostr+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return url, "", fmt.Errorf("no relay answers at %s: %w", url, err)
	}
	defer resp.Body.Close()
	var doc struct {
		Software      string `json:"software"`
		Version       string `json:"version"`
		SupportedNIPs []int  `json:"supported_nips"`
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case err != nil:
		return url, "", fmt.Errorf("%s: %w", url, err)
	case resp.StatusCode != http.StatusOK:
		return url, "", fmt.Errorf("%s answers HTTP %d to a NIP-11 request", url, resp.StatusCode)
	case json.Unmarshal(body, &doc) != nil || doc.SupportedNIPs == nil:
		return url, "", fmt.Errorf("%s answers something that is not a NIP-11 document: %.80q", url, body)
	}
	return url, strings.TrimSpace(path.Base(doc.Software) + " " + doc.Version), nil // "wisp 1.2.3" from its URL
}

// primaryWritable checks that the PostgreSQL database at dbURL answers
// and takes writes: a server in recovery (a standby, or a primary not yet
// promoted after a failover) does not.
func primaryWritable(ctx context.Context, dbURL string) (where string, err error) {
	where = redactURL(dbURL)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return where, fmt.Errorf("the database %s does not answer: %w", where, err)
	}
	defer conn.Close(context.Background())
	var standby bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
		return where, fmt.Errorf("the database %s: %w", where, err)
	}
	if standby {
		return where, fmt.Errorf("the database %s is in recovery (a standby): it takes no writes", where)
	}
	return where, nil
}

// storeWritable checks that the data directory can be written without
// touching the database, and returns the free space.
func storeWritable(dir string) (free int64, err error) {
	if err := prepareDataDir(dir); err != nil {
		return 0, err
	}
	// A file of its own proves the directory takes new blocks: a full or
	// read-only file system, a quota or an inode shortage fail here.
	probe := filepath.Join(dir, fmt.Sprintf(".wisp-health-%d", os.Getpid()))
	f, err := os.OpenFile(probe, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	_, werr := f.Write(make([]byte, 4096))
	cerr := f.Close()
	rerr := os.Remove(probe)
	if err := errors.Join(werr, cerr, rerr); err != nil {
		return 0, fmt.Errorf("write a file in %s: %w", dir, err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	free = int64(st.Bavail) * int64(st.Bsize)
	if free < minFreeBytes {
		return free, fmt.Errorf("%s has %s free: the database cannot grow", dir, byteSize(free))
	}
	return free, nil
}
