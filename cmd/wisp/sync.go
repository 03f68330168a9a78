package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/internal/progress"
	"github.com/wisp-relay/wisp/mirror"
)

const syncUsage = `Usage: wisp sync <relay-url> [--dir down|up|both] [--filter '<json filter>'] [--timeout 15s]

Reconciles this relay's database with another relay. With NIP-77
(negentropy: wisp, strfry) only the ids that differ cross the network;
then the events missing here are downloaded (--dir down, the default), the
events missing there are uploaded (--dir up), or both. A relay without
NIP-77 (it answers with NOTICE or CLOSED, or not within --timeout) is paged
through with REQ instead. Downloaded events pass the same checks, signature
verification and write policy as a client's (source sync). Every wait on
the remote relay is bounded by --timeout. The relay may keep running on the
same database.

  wisp sync wss://relay.example.com
  wisp sync wss://relay.example.com --dir both --filter '{"authors":["<hex>"]}'
`

// runSync is "wisp sync".
func runSync(ctx context.Context, args, environ []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("sync")
	dirFlag := fs.String("dir", "down", "down, up or both")
	filterFlag := fs.String("filter", "", "JSON filter")
	timeout := fs.Duration("timeout", 15*time.Second, "longest wait on the remote relay")
	positional, err := parseFlags(fs, args)
	if err != nil || positional == nil {
		return helpOr(err, stdout, syncUsage)
	}
	if len(positional) != 1 {
		return &usageError{"sync", "sync takes one relay URL (ws:// or wss://)"}
	}
	remote := positional[0]
	if u, err := url.Parse(remote); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return &usageError{"sync", fmt.Sprintf("sync: %q is not a ws:// or wss:// URL", remote)}
	}
	dir, err := mirror.ParseDirection(*dirFlag)
	if err != nil {
		return &usageError{"sync", "sync: " + err.Error()}
	}
	var filter nostr.Filter
	if *filterFlag != "" {
		fl, err := parseFilters(*filterFlag)
		if err != nil {
			return &usageError{"sync", "sync: " + err.Error()}
		}
		if len(fl) != 1 {
			return &usageError{"sync", "sync: want one filter, not an array"}
		}
		filter = fl[0]
	}
	if *timeout <= 0 {
		return &usageError{"sync", "sync: --timeout must be positive"}
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	local, err := openLocal(ctx, cfg, stderr, nil)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := local.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	prog := progress.New(stderr)
	st, err := mirror.Sync(ctx, mirror.SyncOptions{
		URL:     remote,
		Filter:  filter,
		Dir:     dir,
		Local:   local.relay,
		Store:   local.store,
		Timeout: *timeout,
		Log:     local.log,
		Progress: func(st mirror.SyncStats) {
			el := prog.Elapsed()
			moved := st.Downloaded + st.Uploaded + st.UploadRejected
			// Negentropy knows what is to move before it moves; paging by
			// REQ learns it as it goes.
			done := ""
			if st.Method == "negentropy" {
				var total int64
				if dir&mirror.Down != 0 {
					total += int64(st.Need)
				}
				if dir&mirror.Up != 0 {
					total += int64(st.Have)
				}
				if of := progress.Of(moved, total, el); of != "" {
					done = of + ": "
				}
			}
			prog.Update("%s%s: %d here, %d only here, %d only there; down %d (%d stored), up %d (%.0f events/s, %s)",
				done, st.Method, st.Local, st.Have, st.Need, st.Downloaded, st.Stored, st.Uploaded,
				progress.Rate(moved, el), el.Round(time.Second))
		},
	})
	prog.Stop()
	if err != nil && st.Method == "" { // nothing happened yet
		if ctx.Err() != nil {
			return errors.New("sync interrupted")
		}
		return fmt.Errorf("sync with %s: %w", remote, err)
	}
	method := st.Method
	if st.Fallback != "" {
		method += " (no negentropy: " + st.Fallback + ")"
	}
	fmt.Fprintf(stdout, "sync %s with %s by %s in %s: %d events here matched; only here %d, only there %d\n",
		dir, remote, method, prog.Elapsed().Round(time.Millisecond), st.Local, st.Have, st.Need)
	if dir&mirror.Down != 0 {
		fmt.Fprintf(stdout, "  down: %d received: %d stored, %d duplicate, %d rejected\n", st.Downloaded, st.Stored, st.Duplicate, st.Rejected)
	}
	if dir&mirror.Up != 0 {
		fmt.Fprintf(stdout, "  up: %d accepted, %d refused by the remote relay\n", st.Uploaded, st.UploadRejected)
	}
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("sync interrupted")
		}
		return fmt.Errorf("sync with %s: %w", remote, err)
	}
	return nil
}
