package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wisp-relay/wisp/internal/progress"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

const backupUsage = `Usage: wisp backup <file>

Writes a consistent copy of the database (DATA_DIR/wisp.db, from
WISP_DATA_DIR) to <file>, which must not exist. The relay may keep running:
the copy holds every event stored when the backup began. To restore, stop
wisp and put the copy in place of wisp.db (removing wisp.db-wal and
wisp.db-shm).

The copy is written to a hidden .wisp-backup-*.tmp file beside <file> and
renamed when complete. SIGINT or SIGTERM stop the backup and remove it; a
backup killed outright (SIGKILL, a crash) leaves it, and the next backup
into that directory removes it.

On PostgreSQL (WISP_DATABASE_URL) wisp backup does not apply: use
pg_dump, or PostgreSQL's base backups with WAL archiving.
`

// runBackup is "wisp backup <file>".
func runBackup(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		_, err := fmt.Fprint(stdout, backupUsage)
		return err
	}
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return &usageError{"backup", "backup takes one argument, the file to write"}
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	if cfg.usesPostgres() {
		return errors.New("backup: WISP_DATABASE_URL is PostgreSQL, which wisp does not copy: use pg_dump " +
			"(pg_dump --format=custom --file=wisp.dump \"$WISP_DATABASE_URL\"), or a base backup with WAL archiving")
	}
	prog := progress.New(stderr)
	info, err := sqlite.BackupProgress(ctx, cfg.dbPath(), args[0], func(written, total int64) {
		el := prog.Elapsed()
		prog.Update("copied %s of about %s: %s (%s/s)", byteSize(written), byteSize(total),
			progress.Of(written, total, el), byteSize(int64(progress.Rate(written, el))))
	})
	prog.Stop()
	for _, name := range info.Stale {
		fmt.Fprintf(stdout, "removed %s, left by a backup that was killed\n", name)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "backup written to %s: %s events, %s, in %s\n",
		args[0], thousands(info.Events), byteSize(info.Bytes), info.Took.Round(time.Millisecond))
	return err
}

// runStats is "wisp stats".
func runStats(ctx context.Context, environ []string, stdout io.Writer) error {
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	st, err := readStats(ctx, cfg)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	schema := fmt.Sprintf("schema version %d", st.schemaVersion)
	switch {
	case st.schemaVersion > st.knownVersion:
		schema += fmt.Sprintf(" (made by a newer wisp: this one knows %d and will not open it)", st.knownVersion)
	case st.schemaVersion < st.knownVersion:
		schema += fmt.Sprintf(" (wisp migrates it to %d when it starts)", st.knownVersion)
	}
	fmt.Fprintf(w, "database\t%s, %s\n", st.where, schema)
	fmt.Fprintf(w, "size\t%s\n", st.size)
	events := thousands(st.events)
	if st.expired > 0 {
		events += fmt.Sprintf(" (%s expired, purged at the next sweep)", thousands(st.expired))
	}
	fmt.Fprintf(w, "events\t%s\n", events)
	if !st.oldest.IsZero() {
		fmt.Fprintf(w, "created_at\t%s to %s\n", st.oldest.Format(time.DateTime), st.newest.Format(time.DateTime+" MST"))
	}
	search := "off"
	if len(st.searchKinds) > 0 {
		ks := make([]string, len(st.searchKinds))
		for i, k := range st.searchKinds {
			ks[i] = strconv.Itoa(k)
		}
		search = "kinds " + strings.Join(ks, ", ")
	}
	fmt.Fprintf(w, "search\t%s\n", search)
	if len(st.byKind) > 0 {
		fmt.Fprintf(w, "\nkind\tevents\n")
		for _, kc := range st.byKind {
			fmt.Fprintf(w, "%d\t%s\n", kc.Kind, thousands(kc.Events))
		}
	}
	return w.Flush()
}

// thousands writes 1234567 as 1,234,567.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// byteSize writes a size for people: 512 B, 3.4 KiB, 12.0 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
