package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

const deleteUsage = `Usage: wisp delete [--filter '<json filter>'] [--age AGE] [--yes]

Removes stored events matching a NIP-01 filter (or a JSON array of filters;
limits are ignored). Without --yes it only counts them: a dry run
(--dry-run says so explicitly). --age keeps the events younger than AGE
(by created_at: unix seconds as strfry takes it, a duration such as 720h,
or days such as 30d) and deletes the older ones matching the filter, or
all the older ones without --filter. The relay may keep running
meanwhile. The database is DATA_DIR/wisp.db, from WISP_DATA_DIR, or
PostgreSQL at WISP_DATABASE_URL.

  wisp delete --filter '{"authors":["<hex pubkey>"]}'
  wisp delete --filter '{"kinds":[1],"until":1700000000}' --yes
  wisp delete --filter '{"kinds":[7]}' --age 30d --yes
`

const scanUsage = `Usage: wisp scan [--count] '<json filter>'

Prints the stored events matching a NIP-01 filter (or a JSON array of
filters) as JSON lines: the events a REQ with these filters gets, in the
same order (newest first; a search best match first), except that a filter
without limit gets every match and that private messages (kinds 4 and
1059) are shown too. --count prints only how many there are. The relay
may keep running. The database is DATA_DIR/wisp.db, from WISP_DATA_DIR, or
PostgreSQL at WISP_DATABASE_URL.

  wisp scan '{"kinds":[0]}'
  wisp scan '{"#p":["<hex pubkey>"],"limit":10}'
  wisp scan --count '{"search":"nostr"}'
`

// matchesEverything reports whether a filter has no condition at all.
func matchesEverything(f nostr.Filter) bool {
	return f.IDs == nil && f.Authors == nil && f.Kinds == nil && len(f.Tags) == 0 &&
		f.Since == nil && f.Until == nil && f.Search == ""
}

// parseAgeFlag reads delete's --age: unix seconds (strfry's form), a Go
// duration or days.
func parseAgeFlag(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && n < 1<<33 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := parseAge(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--age %q: want seconds, a duration such as 720h, or days such as 30d", s)
	}
	return d, nil
}

// runDelete is `wisp delete`.
func runDelete(ctx context.Context, args, environ []string, stdout io.Writer) (err error) {
	fs := newFlags("delete")
	filter := fs.String("filter", "", "JSON filter")
	yes := fs.Bool("yes", false, "really delete")
	dryRun := fs.Bool("dry-run", false, "only count (the default)")
	age := fs.String("age", "", "delete only events older than this")
	rest, err := parseFlags(fs, args)
	if err != nil || rest == nil {
		return helpOr(err, stdout, deleteUsage)
	}
	if len(rest) > 0 {
		return &usageError{"delete", fmt.Sprintf("delete: unexpected arguments %q (the filter goes after --filter)", rest)}
	}
	if *yes && *dryRun {
		return &usageError{"delete", "delete: --yes and --dry-run contradict each other"}
	}
	filters := []nostr.Filter{{}}
	if *filter != "" || *age == "" {
		if filters, err = parseFilters(*filter); err != nil {
			return &usageError{"delete", "delete: " + err.Error()}
		}
	}
	if *age != "" {
		d, err := parseAgeFlag(*age)
		if err != nil {
			return &usageError{"delete", "delete: " + err.Error()}
		}
		// Older than the age: created_at before now - age.
		before := nostr.Timestamp(time.Now().Add(-d).Unix() - 1)
		for i := range filters {
			if f := &filters[i]; f.Until == nil || *f.Until > before {
				f.Until = &before
			}
		}
	}
	for _, f := range filters {
		if matchesEverything(f) {
			return &usageError{"delete", "delete: a filter without conditions matches every event; refusing"}
		}
	}
	counted := make([]nostr.Filter, len(filters))
	for i, f := range filters {
		f.Limit, f.LimitZero = 0, false // deletion ignores limits; so does the count
		counted[i] = f
	}
	return withStore(ctx, environ, func(_ Config, store eventStore) error {
		var n int64
		if _, err := store.Query(ctx, counted, func([]byte) error { n++; return nil }); err != nil {
			return fmt.Errorf("count matching events: %w", err)
		}
		if !*yes {
			_, err := fmt.Fprintf(stdout, "%d events match; nothing deleted (dry run). Run again with --yes to delete them.\n", n)
			return err
		}
		deleted, err := store.DeleteMatching(ctx, counted)
		if err != nil {
			return fmt.Errorf("delete: %w (%d events deleted before the error)", err, deleted)
		}
		_, err = fmt.Fprintf(stdout, "%d events matched; deleted %d.\n", n, deleted)
		return err
	})
}

// runScan is `wisp scan`.
func runScan(ctx context.Context, args, environ []string, stdout io.Writer) (err error) {
	fs := newFlags("scan")
	filter := fs.String("filter", "", "JSON filter")
	count := fs.Bool("count", false, "print only how many events match")
	rest, err := parseFlags(fs, args)
	if err != nil || rest == nil {
		return helpOr(err, stdout, scanUsage)
	}
	text := *filter
	switch {
	case text == "" && len(rest) == 1:
		text = rest[0]
	case len(rest) > 0:
		return &usageError{"scan", fmt.Sprintf("scan: want one filter, got %q", rest)}
	}
	filters, err := parseFilters(text)
	if err != nil {
		return &usageError{"scan", "scan: " + err.Error()}
	}
	return withStore(ctx, environ, func(_ Config, store eventStore) error {
		w := bufio.NewWriter(stdout)
		var n int64
		// Query is what a REQ runs: the same matches (search included), in
		// the same order, read a page at a time.
		_, err := store.Query(ctx, filters, func(raw []byte) error {
			if n++; *count {
				return nil
			}
			if _, err := w.Write(raw); err != nil {
				return err
			}
			return w.WriteByte('\n')
		})
		if err == nil && *count {
			_, err = fmt.Fprintln(w, n)
		}
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		return nil
	})
}
