package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/wisp-relay/wisp/dashboard"
	"github.com/wisp-relay/wisp/relay"
)

const (
	// shutdownTimeout bounds how long a shutdown waits for queued events to
	// be stored and answered before giving up on the stragglers.
	shutdownTimeout = 15 * time.Second
	// readHeaderTimeout stops clients that open a connection and stall.
	readHeaderTimeout = 10 * time.Second
	// followEvery is how often the relay looks for events that other
	// processes (wisp import, sync, mirror; on PostgreSQL, the other wisp
	// serve nodes) stored in its database, to send them to its live
	// subscribers: one indexed read when there are none.
	followEvery = 250 * time.Millisecond
)

// serveArgs are what wisp serve was started with: its command-line
// arguments and environment (to start its successor with in an upgrade),
// and overridden, the variables WISP_CONFIG_FILE set over the environment.
type serveArgs struct {
	args, environ []string
	overridden    []string
}

// serve runs the relay until ctx is done, then shuts it down in order: stop
// the mirrors (producers), stop accepting, let queued events reach the
// store and their OKs the clients, close connections going away,
// checkpoint and close the database. SIGHUP reloads the configuration
// (reload.go); SIGUSR2 hands the relay over to a new process (upgrade.go).
func serve(ctx context.Context, cfg Config, sa serveArgs, stderr io.Writer, ready func(net.Addr)) (err error) {
	ips := newIPMask(cfg.LogIPs) // the log's and the dashboard's
	log, level := newLevelLogger(cfg, ips, stderr)
	// Taken first, so that a SIGHUP while starting does not kill wisp.
	hup, usr2 := make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(hup)
	defer signal.Stop(usr2)
	exe, exeErr := os.Executable() // now: the path may get a new binary before an upgrade

	pred, err := inherited(sa.environ, !cfg.usesPostgres())
	if err != nil {
		return err
	}
	environ := withoutVar(sa.environ, upgradeFromVar)
	if err := checkMirrorConfig(cfg); err != nil {
		return err
	}
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return err
	}
	// One serve per SQLite data directory; released after the store is
	// closed (an upgrade hands it on). PostgreSQL is made to be shared.
	var lock *dataLock
	switch {
	case cfg.usesPostgres():
	case pred != nil:
		lock = pred.lock
		lock.claim()
	default:
		if lock, err = lockDataDir(cfg.DataDir); err != nil {
			return err
		}
	}
	defer lock.release()
	// The successor, once it took over, may open the database when this
	// process has closed it: this runs after the store's Close below.
	var handedOver *successor
	defer func() {
		if handedOver != nil {
			log.Info("upgrade: database closed; the new wisp serve takes over", "pid", handedOver.cmd.Process.Pid)
			handedOver.released()
		}
	}()

	var ln net.Listener
	if pred != nil {
		ln = pred.ln
		log.Info("upgrade: taking over from the running wisp serve; waiting for it to drain and close the database",
			"pid", pred.pid, "addr", ln.Addr().String())
		if w := listenMoved(cfg.Listen, ln.Addr()); w != "" {
			log.Warn(w)
		}
		if err := pred.takeOver(ctx); err != nil {
			ln.Close()
			return err
		}
	} else if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close() // on an early return; srv.Shutdown closes it otherwise

	store, err := openStore(ctx, cfg, forServe, log)
	if err != nil {
		return err
	}
	// The store is closed last, after the relay has drained into it; it
	// completes its search index and checkpoints on the way.
	defer func() {
		if cerr := store.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close database: %w", cerr))
		}
	}()

	acc, err := newAccess(ctx, cfg, store, log)
	if err != nil {
		return err
	}
	defer acc.policy.Close() // stops a plugin, after the relay has drained
	comm, err := newCommunity(ctx, cfg, store, acc, log)
	if err != nil {
		return err
	}
	defer comm.close() //nolint:errcheck // stops group deletions, which resume at the next start

	if cfg.PprofListen != "" {
		stopPprof, err := servePprof(cfg.PprofListen, log)
		if err != nil {
			return fmt.Errorf("pprof: %w", err)
		}
		defer stopPprof()
	}

	rcfg := relay.Config{
		Limits:        cfg.limits(),
		Info:          cfg.info(),
		Version:       version,
		Verifier:      verifier,
		VerifyWorkers: cfg.VerifyWorkers,
		WriteBatchMax: cfg.WriteBatchMax,
		WriteQueue:    cfg.WriteQueue,
		Logger:        log,
		Negentropy:    cfg.negentropy(),
		FollowStore:   followEvery,
	}
	acc.apply(&rcfg, cfg)
	comm.apply(&rcfg)
	var rl *relay.Relay
	met := newMetrics(store, func() relay.Stats { return rl.Stats() }) // scraped only once rl is set
	rcfg.Metrics, rcfg.SlowQuery = met, cfg.SlowQuery
	var tally *dashboard.Tally // the dashboard's busiest lists, fed by the relay
	if dashboardOn(cfg, rcfg.AdminPubkeys) {
		tally = dashboard.NewTally(ips.mode != "off")
		rcfg.Senders = tally
	}
	rl = relay.New(rcfg, store)
	var dash *dashboard.Dashboard
	if tally != nil {
		rl.OnStored(tally.Stored)
		dash = newDashboard(cfg, rl, len(rcfg.AdminPubkeys) > 0, tally, met, store, ips, log)
	}
	rl.Start()
	if err := comm.start(ctx, rl); err != nil {
		rl.Shutdown(ctx) //nolint:errcheck // nothing was accepted yet
		return err
	}

	metricsHere := metricsOnRelayPort(cfg, ln.Addr())
	stopMetrics, err := serveMetrics(cfg, met, metricsHere, log)
	if err != nil {
		rl.Shutdown(ctx) //nolint:errcheck // nothing was accepted yet
		return fmt.Errorf("metrics: %w", err)
	}
	defer stopMetrics()

	fresh := &freshConns{}
	srv := &http.Server{
		Handler:           handler(rl, met, cfg.MetricsToken, metricsHere, httpHandler(dash)),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnState:         fresh.hook,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var wg sync.WaitGroup
	upkeepCtx, stopUpkeep := context.WithCancel(ctx)
	defer stopUpkeep()
	wg.Go(func() { giveBackMemory(upkeepCtx) })
	if dash != nil {
		wg.Go(func() { dash.Run(upkeepCtx) })
	}
	if cfg.usesPostgres() {
		// Other nodes change the moderation lists (NIP-86) too.
		wg.Go(func() { followModeration(upkeepCtx, store, acc.admin, log) })
	}
	// Live mirroring (mirror.go); the file was checked. A reload may
	// start, change or stop it.
	mirrors := &serveMirrors{ctx: ctx, cfg: cfg, rl: rl, store: store, log: log}
	if cfg.MirrorConfig != "" {
		mirrors.set(cfg.MirrorConfig, nil)
	}
	defer mirrors.stop() // on an early return; a no-op after the first call
	rel := &reloader{environ: environ, log: log, level: level, rl: rl, pol: acc.policy, mirrors: mirrors, cur: cfg}

	attrs := []any{
		"url", clientURL(cfg.PublicURL, ln.Addr()),
		"addr", ln.Addr().String(),
		"data", store.where(),
		"version", version,
		"verifier", verifier,
		"sync", cfg.Sync,
		"pid", os.Getpid(),
	}
	if pred != nil {
		attrs = append(attrs, "took_over_from", pred.pid)
	}
	log.Info("wisp listening", attrs...)
	if dash != nil {
		log.Info("dashboard", "url", dashboardURL(cfg.PublicURL, ln.Addr()),
			"login", dashboardLogins(len(rcfg.AdminPubkeys) > 0, cfg.MetricsToken != ""))
	}
	for _, name := range sa.overridden {
		log.Info("set in the environment and in "+configFileVar+": the file's value is used", "variable", name)
	}
	for _, w := range cfg.sharedWarnings() {
		log.Warn(w)
	}
	for _, w := range cfg.urlWarnings() {
		log.Warn(w)
	}
	if in, why := inContainer("/", environ); in {
		if w := loopbackInContainer(cfg.Listen, why); w != "" {
			log.Warn(w)
		}
	}
	sdNotify(environ, "READY=1")
	if ready != nil {
		ready(ln.Addr())
	}

	var (
		errs      []error
		upgrading *successor // started, not yet ready
		readyc    = make(chan error, 1)
	)
	upgradeCtx, cancelUpgrade := context.WithCancel(ctx)
	defer cancelUpgrade()
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "cause", context.Cause(ctx))
			break loop
		case err := <-serveErr:
			errs = append(errs, fmt.Errorf("serve http: %w", err))
			log.Error("http server failed, shutting down", "err", err)
			break loop
		case <-hup:
			sdNotify(environ, "RELOADING=1")
			rel.reload() //nolint:errcheck // it logs what it did
			sdNotify(environ, "READY=1")
		case <-usr2:
			if upgrading != nil {
				log.Warn("upgrade: already starting a new wisp serve", "pid", upgrading.cmd.Process.Pid)
				continue
			}
			if exeErr != nil {
				log.Error("upgrade: cannot find this executable; still serving", "err", exeErr)
				continue
			}
			s, err := startSuccessor(exe, sa.args, sa.environ, ln, lock, stderr)
			if err != nil {
				log.Error("upgrade failed; still serving", "err", err)
				continue
			}
			log.Info("upgrade: started a new wisp serve, waiting until it is ready", "pid", s.cmd.Process.Pid, "path", exe)
			upgrading = s
			go func() { readyc <- s.waitReady(upgradeCtx) }()
		case err := <-readyc:
			s := upgrading
			upgrading = nil
			if err != nil {
				log.Error("upgrade failed; still serving", "err", err)
				continue
			}
			log.Info("upgrade: the new wisp serve is ready; this one stops accepting and drains", "pid", s.cmd.Process.Pid)
			sdNotify(environ, fmt.Sprintf("MAINPID=%d", s.cmd.Process.Pid))
			handedOver = s
			break loop
		}
	}
	if upgrading != nil { // stopping before the new one was ready: it must not take over
		cancelUpgrade() // waitReady kills it
		if err := <-readyc; err == nil {
			upgrading.kill() // it was ready just now
		}
	}
	if handedOver == nil {
		sdNotify(environ, "STOPPING=1")
	}

	// Producers stop first: the mirrors' down streams feed the relay, so
	// they stop (and save their positions) before it drains.
	mirrors.stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if handedOver != nil {
		// No connection may be refused: the HTTP server answers (or hands
		// to the relay) every connection it accepted before the relay
		// refuses new ones (handover.go); then the relay drains.
		if err := handOverHTTP(sctx, srv, ln, serveErr, fresh); err != nil {
			errs = append(errs, fmt.Errorf("shut down http server: %w", err))
		}
		if err := rl.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down relay: %w", err))
		}
	} else {
		// http.Server.Shutdown closes the listener and waits for plain
		// HTTP requests, but it neither closes nor waits for hijacked
		// websocket connections: those are the relay's to drain, so both
		// run together.
		httpDone := make(chan error, 1)
		go func() { httpDone <- srv.Shutdown(sctx) }()
		if err := rl.Shutdown(sctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down relay: %w", err))
		}
		if err := <-httpDone; err != nil {
			errs = append(errs, fmt.Errorf("shut down http server: %w", err))
		}
	}
	stopUpkeep()
	wg.Wait()
	log.Info("wisp stopped")
	return errors.Join(errs...)
}

// listenMoved warns when WISP_LISTEN names another address than the
// socket an upgrade handed over, which only a restart moves.
func listenMoved(listen string, addr net.Addr) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" {
		return ""
	}
	ah, ap, err := net.SplitHostPort(addr.String())
	if err != nil || (port == ap && (host == ah || (host == "" && net.ParseIP(ah).IsUnspecified()))) {
		return ""
	}
	return fmt.Sprintf("%sLISTEN=%s, but an upgrade keeps the listening socket (%s): restart wisp to move it", envPrefix, listen, addr)
}

// newLogger builds the process logger; cfg has been validated.
func newLogger(cfg Config, ips ipMask, w io.Writer) *slog.Logger {
	log, _ := newLevelLogger(cfg, ips, w)
	return log
}

// newLevelLogger is newLogger with its level, which a reload may change.
func newLevelLogger(cfg Config, ips ipMask, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	l, _ := parseLevel(cfg.LogLevel)
	level := &slog.LevelVar{}
	level.Set(l)
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: ips.replaceAttr()}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), level
	}
	return slog.New(slog.NewTextHandler(w, opts)), level
}

// clientURL is the URL to paste into a client: the configured public URL, or
// ws:// and the bound address, with localhost for a wildcard address.
func clientURL(public string, addr net.Addr) string {
	if public != "" {
		return public
	}
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "ws://" + addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "ws://" + net.JoinHostPort(host, port)
}
