package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/internal/progress"
)

const exportUsage = `Usage: wisp export [--filter '<json filter>'] [--since T] [--until T] [--out file]

Writes stored events as JSON lines, one event per line (the format strfry,
nostream and wisp import read), newest first (the order of strfry's export
--reverse; wisp has no other, and importers take any), to standard output
or --out.
--filter takes a NIP-01 filter or a JSON array of them (limits are
honoured; none means every match). --since and --until bound created_at:
unix seconds, a date (2024-01-31) or an RFC 3339 time. The relay may keep
running. The database is DATA_DIR/wisp.db, from WISP_DATA_DIR, or
PostgreSQL at WISP_DATABASE_URL.

  wisp export > all.jsonl
  wisp export --filter '{"kinds":[0,3]}' --since 2024-01-01 --out profiles.jsonl
`

// parseTime reads unix seconds, a date or an RFC 3339 time.
func parseTime(s string) (nostr.Timestamp, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return nostr.Timestamp(n), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return nostr.Timestamp(t.Unix()), nil
		}
	}
	return 0, fmt.Errorf("%q: want unix seconds, a date (2006-01-02) or an RFC 3339 time", s)
}

// runExport is "wisp export".
func runExport(ctx context.Context, args, environ []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("export")
	filter := fs.String("filter", "", "JSON filter")
	since := fs.String("since", "", "oldest created_at")
	until := fs.String("until", "", "newest created_at")
	out := fs.String("out", "", "file to write")
	reverse := fs.Bool("reverse", false, "strfry's flag; see below")
	rest, err := parseFlags(fs, args)
	if err != nil || rest == nil {
		return helpOr(err, stdout, exportUsage)
	}
	if len(rest) > 0 {
		return &usageError{"export", fmt.Sprintf("export: unexpected arguments %q", rest)}
	}
	if *reverse {
		// strfry exports oldest first and --reverse newest first; wisp has
		// one order, a REQ's. Doing nothing would surprise whoever meant
		// one or the other.
		return &usageError{"export", "export: wisp export has no --reverse: it always writes newest first " +
			"(strfry's --reverse order); wisp import and strfry import take events in any order"}
	}
	filters := []nostr.Filter{{}}
	if *filter != "" {
		if filters, err = parseFilters(*filter); err != nil {
			return &usageError{"export", "export: " + err.Error()}
		}
	}
	for _, b := range []struct {
		text string
		set  func(f *nostr.Filter, t nostr.Timestamp)
	}{
		{*since, func(f *nostr.Filter, t nostr.Timestamp) { f.Since = &t }},
		{*until, func(f *nostr.Filter, t nostr.Timestamp) { f.Until = &t }},
	} {
		if b.text == "" {
			continue
		}
		t, err := parseTime(b.text)
		if err != nil {
			return &usageError{"export", "export: " + err.Error()}
		}
		for i := range filters {
			b.set(&filters[i], t)
		}
	}
	return withStore(ctx, environ, func(_ Config, store eventStore) error {
		return exportEvents(ctx, store, filters, *out, stdout, stderr)
	})
}

// exportTotal is how many events an export will write, for its progress
// line: a COUNT of the filters, which reads only indexes; 0 (unknown) off
// a terminal, with a limit, or past the count's cap.
func exportTotal(ctx context.Context, store eventStore, filters []nostr.Filter, prog *progress.Line) int64 {
	if !prog.Drawn() {
		return 0
	}
	for _, f := range filters {
		if f.Limit > 0 || f.LimitZero {
			return 0
		}
	}
	n, approx, err := store.Count(ctx, filters)
	if err != nil || approx {
		return 0
	}
	return n
}

// exportEvents writes the events matching filters as JSON lines to out (a
// file, or stdout for "" and "-").
func exportEvents(ctx context.Context, store eventStore, filters []nostr.Filter, out string, stdout, stderr io.Writer) (err error) {
	dst := stdout
	var file *os.File
	if out != "" && out != "-" {
		file, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		dst = file
	}
	w := bufio.NewWriterSize(dst, 1<<20)
	prog := progress.New(stderr)
	total := exportTotal(ctx, store, filters, prog)
	var n, bytes int64
	_, err = store.Query(ctx, filters, func(raw []byte) error { // what a REQ runs
		if _, err := w.Write(raw); err != nil {
			return err
		}
		n++
		bytes += int64(len(raw)) + 1
		el := prog.Elapsed()
		done := ""
		if of := progress.Of(n, total, el); of != "" {
			done = of + ": "
		}
		prog.Update("%sexported %d events (%.0f/s, %s)", done, n, progress.Rate(n, el), el.Round(time.Second))
		return w.WriteByte('\n')
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if file != nil {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}
	prog.Stop()
	took := prog.Elapsed()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", ctx.Err())
		}
		return fmt.Errorf("export: %w (%d events written)", err, n)
	}
	fmt.Fprintf(stderr, "exported %d events (%s) in %s\n", n, byteSize(bytes), took.Round(time.Millisecond))
	return nil
}
