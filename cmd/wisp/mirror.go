package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wisp-relay/wisp/internal/progress"
	"github.com/wisp-relay/wisp/mirror"
	"github.com/wisp-relay/wisp/relay"
)

const mirrorUsage = `Usage: wisp mirror <config>

Runs the live mirroring streams of a config file (the format of
WISP_MIRROR_CONFIG, see README) without serving clients, until
interrupted: down streams store the events remote relays publish, up
streams send the events stored in the database (by this process or by a
wisp serve running on it) to remote relays. wisp serve runs the same
streams itself when WISP_MIRROR_CONFIG is set. The streams' positions
are kept in the data directory (mirror-state-<config name>.json), so
they resume where they stopped. The file is reloaded when it changes.

  wisp mirror /etc/wisp/mirror.json
`

// checkMirrorConfig loads WISP_MIRROR_CONFIG, if set, to refuse a broken
// file before the relay starts.
func checkMirrorConfig(cfg Config) error {
	if cfg.MirrorConfig == "" {
		return nil
	}
	if _, err := mirror.LoadConfig(cfg.MirrorConfig); err != nil {
		return fmt.Errorf("%sMIRROR_CONFIG: %w", envPrefix, err)
	}
	return nil
}

// mirrorStateFile is where wisp serve keeps its streams' positions, in the
// data directory; wisp mirror keeps them beside it, in a file named after
// its config (see mirrorStatePath), so that the two never share one.
const mirrorStateFile = "mirror-state.json"

// mirrorStatePath is the state file of "wisp mirror <config>".
func mirrorStatePath(dataDir, config string) string {
	name := strings.TrimSuffix(filepath.Base(config), filepath.Ext(config))
	return filepath.Join(dataDir, "mirror-state-"+name+".json")
}

// serveMirrors runs wisp serve's mirror streams (WISP_MIRROR_CONFIG),
// which a reload may start, change or stop.
type serveMirrors struct {
	ctx   context.Context
	cfg   Config // for the data directory
	rl    *relay.Relay
	store eventStore
	log   *slog.Logger

	mu     sync.Mutex
	m      *mirror.Manager // nil: none running
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// set runs the streams of the file at path (cfg, loaded from it), or none
// for "". ctx of the serveMirrors bounds them.
func (s *serveMirrors) set(path string, cfg *mirror.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case path == "":
		s.stopLocked()
	case s.m == nil:
		ctx, cancel := context.WithCancel(s.ctx)
		m := &mirror.Manager{Path: path, Local: s.rl, Store: s.store, Log: s.log,
			StatePath: filepath.Join(s.cfg.DataDir, mirrorStateFile)}
		s.m, s.cancel = m, cancel
		s.wg.Go(func() {
			if err := m.Run(ctx); err != nil {
				s.log.Error("mirroring stopped", "err", err)
			}
		})
	default:
		s.m.Use(path, cfg)
	}
}

// stop stops the streams, which save their positions, and waits for them.
func (s *serveMirrors) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *serveMirrors) stopLocked() {
	if s.m == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
	s.m, s.cancel = nil, nil
}

// runMirror is "wisp mirror <config>".
func runMirror(ctx context.Context, args, environ []string, stdout, stderr io.Writer) (err error) {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		_, err := fmt.Fprint(stdout, mirrorUsage)
		return err
	}
	if len(args) != 1 {
		return &usageError{"mirror", "mirror takes one argument, the config file"}
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
	m := &mirror.Manager{Path: args[0], Local: local.relay, Store: local.store, Log: local.log,
		StatePath: mirrorStatePath(cfg.DataDir, args[0])}
	start := time.Now()
	prog := progress.New(stderr)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	st := m.Stats()
	for {
		select {
		case err := <-done:
			prog.Stop()
			fmt.Fprintf(stdout, "mirrored for %s: %d received, %d stored; %d sent, %d accepted, %d refused; %d connections\n",
				time.Since(start).Round(time.Second), st.Received.Load(), st.Stored.Load(),
				st.Sent.Load(), st.Accepted.Load(), st.Refused.Load(), st.Connects.Load())
			return err
		case <-t.C:
			el := prog.Elapsed()
			prog.Update("down: %d received, %d stored (%.0f/s); up: %d sent, %d accepted (%.0f/s)",
				st.Received.Load(), st.Stored.Load(), progress.Rate(st.Received.Load(), el),
				st.Sent.Load(), st.Accepted.Load(), progress.Rate(st.Sent.Load(), el))
		}
	}
}
