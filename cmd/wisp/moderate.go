package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

const deleteUsage = `Usage: wisp delete --filter '<json filter>' [--yes]

Removes stored events matching a NIP-01 filter (or a JSON array of filters;
limits are ignored). Without --yes it only counts them: a dry run. The relay
may keep running meanwhile. The database is DATA_DIR/wisp.db, from WISP_DATA_DIR.

  wisp delete --filter '{"authors":["<hex pubkey>"]}'
  wisp delete --filter '{"kinds":[1],"until":1700000000}' --yes
`

const scanUsage = `Usage: wisp scan '<json filter>'

Prints the stored events matching a NIP-01 filter (or a JSON array of
filters) as JSON lines, newest first; a filter's limit is honoured, none
means every match. The database is DATA_DIR/wisp.db, from WISP_DATA_DIR.

  wisp scan '{"kinds":[0]}'
  wisp scan '{"#p":["<hex pubkey>"],"limit":10}'
`

// matchesEverything reports whether a filter has no condition at all.
func matchesEverything(f nostr.Filter) bool {
	return f.IDs == nil && f.Authors == nil && f.Kinds == nil && len(f.Tags) == 0 &&
		f.Since == nil && f.Until == nil && f.Search == ""
}

// runDelete is `wisp delete`.
func runDelete(ctx context.Context, args, environ []string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("delete", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	filter := fs.String("filter", "", "JSON filter")
	yes := fs.Bool("yes", false, "really delete")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, err = fmt.Fprint(stdout, deleteUsage)
			return err
		}
		return &usageError{"delete", "delete: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return &usageError{"delete", fmt.Sprintf("delete: unexpected arguments %q (the filter goes after --filter)", fs.Args())}
	}
	filters, err := parseFilters(*filter)
	if err != nil {
		return &usageError{"delete", "delete: " + err.Error()}
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
	return withStore(ctx, environ, func(_ Config, store *sqlite.Store) error {
		var n int64
		if err := store.Scan(ctx, counted, func([]byte) error { n++; return nil }); err != nil {
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
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	filter := fs.String("filter", "", "JSON filter")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, err = fmt.Fprint(stdout, scanUsage)
			return err
		}
		return &usageError{"scan", "scan: " + err.Error()}
	}
	text := *filter
	switch {
	case text == "" && fs.NArg() == 1:
		text = fs.Arg(0)
	case fs.NArg() > 0:
		return &usageError{"scan", fmt.Sprintf("scan: want one filter, got %q", fs.Args())}
	}
	filters, err := parseFilters(text)
	if err != nil {
		return &usageError{"scan", "scan: " + err.Error()}
	}
	return withStore(ctx, environ, func(_ Config, store *sqlite.Store) error {
		w := bufio.NewWriter(stdout)
		err := store.Scan(ctx, filters, func(raw []byte) error {
			if _, err := w.Write(raw); err != nil {
				return err
			}
			return w.WriteByte('\n')
		})
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		return nil
	})
}
