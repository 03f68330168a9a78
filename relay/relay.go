// Package relay speaks the Nostr protocol over websockets: connections,
// NIP-01 messages, subscriptions and live fan-out, the NIP-11 document and
// the front page.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/relay/wsconn"
	"github.com/wisp-relay/wisp/storage"
)

// Config is everything the relay needs besides its store.
type Config struct {
	// Limits, Info and SlowQuery are the first live settings, which
	// SetLive replaces (live.go).
	Limits  Limits
	Info    Info
	Version string // wisp's version, served in NIP-11
	// Verifier names the signature verifier compiled in ("btcec" or
	// "libsecp256k1"); shown in NIP-11 and on the front page.
	Verifier      string
	VerifyWorkers int // signature-check workers (0: GOMAXPROCS)
	WriteBatchMax int // most events in one write transaction (0: 500)
	WriteQueue    int // events waiting for the writer before EVENTs wait (0: 4096)
	// PingInterval is how often every client is pinged; one from which
	// nothing at all came within an interval after a ping is dropped. 0: 45s.
	PingInterval time.Duration
	Logger       *slog.Logger // nil: discard

	// Policy decides who may connect, read and write (nil: everyone); see
	// policy.go. Manager serves NIP-86 calls from AdminPubkeys (nil or no
	// admins: no management API). RealIPHeader names the header a reverse
	// proxy puts the client's address in ("": use the TCP peer).
	Policy       Policy
	Manager      Manager
	AdminPubkeys []string
	RealIPHeader string

	// Negentropy configures NIP-77 set reconciliation (off when zero); see
	// negentropy.go.
	Negentropy NegentropyConfig

	// Groups keeps NIP-29 groups (nil: off), see keeper.go; Membership
	// answers NIP-43 requests (nil: off), see membership.go. Both publish
	// events signed by the relay's own key, whose pubkey is Info.Self.
	Groups     Groups
	Membership Membership

	// Metrics receives counters and timings (nil: none); see observe.go.
	Metrics Metrics
	// Senders is told who sends events (nil: nobody); see observe.go.
	Senders Senders
	// SlowQuery: stored queries taking at least this long are logged with
	// their filters (0: never).
	SlowQuery time.Duration

	// FollowStore, when positive, is how often the relay reads its store
	// for events other processes stored in it (wisp import, sync, mirror)
	// and sends them to live subscribers; 0: never. It needs a store that
	// is a storage.SeqLister. See follow.go.
	FollowStore time.Duration
}

// supportedNIPs are the NIPs this build really implements.
var supportedNIPs = []int{1, 9, 11, 40, 45, 67}

// Relay is a Nostr relay over one store. Create it with New, call Start, serve
// it as an http.Handler, and stop it with Shutdown.
type Relay struct {
	cfg   Config
	live  atomic.Pointer[Live] // what SetLive changes; see live.go
	store storage.Store
	log   *slog.Logger
	index *subIndex
	stats counters

	verifyCh chan *pending
	writeCh  chan *pending
	sigs     sigChecker // the verify workers' signature checks

	upgrader  wsconn.Upgrader // websockets, sharing read buffers
	writeBufs sync.Pool       // the connections' framing buffers (*[]byte)
	writers   *writerPool     // the connections' parked outbox writers

	ctx        context.Context // cancelled when the workers must stop
	cancel     context.CancelFunc
	workers    sync.WaitGroup // verify workers, the writer, the sweeper
	verifiers  atomic.Int32   // verify workers running; the last one closes writeCh
	writerDone chan struct{}  // closed when the writer returns
	started    bool

	// drainMu orders "is the relay draining?" against senders.Add and
	// inflight.add, so that Shutdown's waits never race a new Add.
	drainMu  sync.RWMutex
	draining atomic.Bool    // set under drainMu
	senders  sync.WaitGroup // admit calls that may still send on verifyCh
	inflight inflight       // events admitted and not yet answered

	shutdownOnce sync.Once
	goneAway     chan struct{} // closed once Shutdown has drained and started closing connections

	connsMu sync.Mutex
	conns   map[*conn]struct{}
	connWG  sync.WaitGroup

	id           identity  // the names this relay answers to (identity.go)
	httpAuthSeen authCache // NIP-98 events already used (manage.go)

	search searchState // NIP-50, see search.go

	hooks storedHooks // told about stored events, see ingest.go

	bcastMu sync.Mutex  // one broadcaster at a time: the writer or the follower
	follow  followState // what the writer and the follower share, see follow.go

	negHeld atomic.Int64 // events held by every open NIP-77 session (negentropy.go)
}

// counters are the relay's running figures.
type counters struct {
	stored, duplicate, rejected, slowEvictions atomic.Int64
	connections                                atomic.Int64
}

// New returns a relay over store. It starts nothing.
func New(cfg Config, store storage.Store) *Relay {
	if cfg.VerifyWorkers <= 0 {
		cfg.VerifyWorkers = runtime.GOMAXPROCS(0)
	}
	if cfg.WriteBatchMax <= 0 {
		cfg.WriteBatchMax = 500
	}
	if cfg.WriteQueue <= 0 {
		cfg.WriteQueue = 4096
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 45 * time.Second
	}
	if cfg.Verifier == "" {
		cfg.Verifier = "btcec"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{
		cfg:      cfg,
		id:       newIdentity(cfg.Info),
		store:    store,
		log:      log,
		index:    newSubIndex(),
		verifyCh: make(chan *pending, cfg.VerifyWorkers*64),
		writeCh:  make(chan *pending, cfg.WriteQueue),
		ctx:      ctx,
		cancel:   cancel,
		conns:    map[*conn]struct{}{},

		writerDone: make(chan struct{}),
		goneAway:   make(chan struct{}),
	}
	r.writers = newWriterPool(parkedWriters, ctx.Done())
	r.live.Store(&Live{Limits: cfg.Limits, Info: cfg.Info, SlowQuery: cfg.SlowQuery})
	return r
}

// Start starts the relay's background workers: signature checks, the
// writer, the keepalive pings and the follower (whose position in the
// store it reads before it returns). (The store sweeps expired events
// itself.)
func (r *Relay) Start() {
	r.started = true
	r.verifiers.Store(int32(r.cfg.VerifyWorkers))
	for range r.cfg.VerifyWorkers {
		r.workers.Go(r.verifyLoop)
	}
	r.workers.Go(r.writeLoop)
	r.workers.Go(r.pingLoop)
	r.startFollowing()
}

// ServeHTTP upgrades websockets, and serves NIP-11 and the front page.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/" {
		http.NotFound(w, req)
		return
	}
	switch {
	case websocketRequested(req):
		r.serveWebsocket(w, req)
	case r.isManagementRequest(req):
		r.serveManagement(w, req)
	case wantsInfo(req) || req.Method == http.MethodOptions:
		serveInfo(w, req, r.infoDocument(req))
	case req.Method == http.MethodGet || req.Method == http.MethodHead:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		err := renderPage(w, pageParams{
			info:         r.info(),
			lim:          *r.limits(),
			version:      r.cfg.Version,
			verifier:     r.cfg.Verifier,
			nips:         r.nips(),
			url:          relayURL(req, r.cfg.Info.PublicURL),
			eventsStored: r.eventsStored(req.Context()),
			connections:  int(r.stats.connections.Load()),
			extra:        r.extraLimits(),
		})
		if err != nil {
			r.log.Warn("render front page", "err", err)
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func websocketRequested(req *http.Request) bool {
	return wsconn.HeaderHasToken(req.Header, "Connection", "upgrade") && wsconn.HeaderHasToken(req.Header, "Upgrade", "websocket")
}

func (r *Relay) infoDocument(req *http.Request) []byte {
	return infoDocument(infoParams{
		info:     r.info(),
		lim:      *r.limits(),
		version:  r.cfg.Version,
		verifier: r.cfg.Verifier,
		nips:     r.nips(),
		url:      relayURL(req, r.cfg.Info.PublicURL),
		policy:   r.limitation(),
		nip29:    r.nip29(),
	})
}

func (r *Relay) serveWebsocket(w http.ResponseWriter, req *http.Request) {
	r.drainMu.RLock()
	draining := r.draining.Load()
	if !draining {
		r.connWG.Add(1)
	}
	r.drainMu.RUnlock()
	if draining {
		r.metrics().Refused(RefusedConnection, wisp.PrefixError)
		http.Error(w, "relay is shutting down", http.StatusServiceUnavailable)
		return
	}
	remote := r.clientIP(req)
	release, admitted := r.admitConn(w, remote)
	if !admitted {
		r.connWG.Done()
		return
	}

	lim := r.limits()
	ws, err := r.upgrader.UpgradeLimit(w, req, lim.MaxMessageBytes)
	if err != nil {
		release()
		r.connWG.Done()
		return // Upgrade already answered the request
	}

	c := newConn(r, ws, remote, lim)
	c.auth.init(c)
	r.connsMu.Lock()
	r.conns[c] = struct{}{}
	if r.draining.Load() {
		c.in.goAway() // Shutdown may have gone through the connections already
	}
	r.connsMu.Unlock()
	r.stats.connections.Add(1)
	c.logOpened(r.stats.connections.Load())

	// The connection runs in a goroutine of its own, so that this handler
	// returns and the HTTP server's goroutine, with its deep stack and
	// buffers, goes away: an idle connection costs only what it needs.
	go c.run(release)
}

// run is the connection's reader goroutine. It reads first and ends the
// connection only after, in a call of its own: the frames on the stack
// while it waits for the client are kept few, so the goroutine fits the
// smallest stack.
func (c *conn) run(release func()) {
	c.readLoop()
	c.end()
	release()
	c.r.connWG.Done()
}

// end closes the connection after its reader stopped.
func (c *conn) end() {
	r := c.r
	why := c.endReason()

	var ce *wsconn.CloseError
	var pe *wsconn.ProtocolError
	switch err := c.obs.readErr; {
	case errors.As(err, &ce):
		c.in.wait()                                 // what the client sent before closing is answered
		c.closeWith(wsconn.StatusNormalClosure, "") // then its close
	case errors.As(err, &pe):
		c.in.wait()
		c.closeWith(pe.Code, pe.Reason)
	default:
		// Relay-initiated closes end here after the close frame went out;
		// otherwise the socket broke and there is no one to talk to.
		c.abort("")
		c.in.wait()
	}
	for _, s := range c.subs {
		r.index.remove(s)
		s.close()
	}
	for id := range c.negs {
		c.closeNeg(id)
	}
	c.out.wait()
	if pe != nil {
		// The close frame went out; what the client still sends (the rest
		// of an oversized message) must be read, or closing the socket
		// resets the connection before the client sees why.
		c.ws.Drain(closeWait)
	}
	c.ws.Close()
	c.cancel()
	r.connsMu.Lock()
	delete(r.conns, c)
	r.connsMu.Unlock()
	r.stats.connections.Add(-1)
	c.logClosed(why)
}

func remoteAddr(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
}

// Shutdown stops the relay in order, producers first, within ctx:
//
//   - new connections get HTTP 503 and new EVENTs (and Ingest calls)
//     `error: relay is shutting down`;
//   - every event already admitted flows through the verify pool and the
//     writer to the store and its OK (each stage closes the next one's
//     input once it has nothing more to send);
//   - every connection answers the messages it has read and closes with
//     1001 (going away), see goAway;
//   - the workers stop.
//
// If the pipeline has not drained shortly before ctx's deadline (a Save
// that hangs), the workers are stopped, every event still in flight is
// answered `error: relay is shutting down` (never OK true: it may not be
// stored), and the connections are closed with the time left. Shutdown
// returns by ctx's deadline whatever the store does. The store is left
// open for the caller to close. A second call waits for the first to have
// drained, then for the connections and workers to stop.
func (r *Relay) Shutdown(ctx context.Context) error {
	var errs []error
	first := false
	r.shutdownOnce.Do(func() { first = true })
	if first {
		if err := r.drainAndGoAway(ctx); err != nil {
			errs = append(errs, err)
		}
		close(r.goneAway)
	} else {
		select {
		case <-r.goneAway:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// A later call waits for what an earlier one ran out of time for.
	if err := waitCtx(ctx, &r.connWG); err != nil {
		errs = append(errs, fmt.Errorf("close connections: %w", err))
		r.connsMu.Lock()
		for c := range r.conns {
			c.abort("relay is shutting down")
		}
		r.connsMu.Unlock()
	}
	r.cancel()
	if err := waitCtx(ctx, &r.workers); err != nil {
		errs = append(errs, fmt.Errorf("stop workers: %w", err))
	}
	return errors.Join(errs...)
}

// drainAndGoAway refuses new events, lets the admitted ones through (or
// answers them when the time for that is up), and starts closing every
// connection.
func (r *Relay) drainAndGoAway(ctx context.Context) error {
	r.drainMu.Lock()
	r.draining.Store(true)
	r.drainMu.Unlock()

	dctx, cancel := drainContext(ctx)
	err := r.drain(dctx)
	cancel()
	if err != nil {
		err = fmt.Errorf("drain events: %w", err)
		left := r.inflight.snapshot()
		for _, p := range left {
			r.answer(p, false, wisp.Reason(wisp.PrefixError, "relay is shutting down"))
		}
		r.log.Warn("shutdown: events not stored in time", "events", len(left))
	}

	r.connsMu.Lock()
	for c := range r.conns {
		c.in.goAway()
	}
	r.connsMu.Unlock()
	if err != nil {
		// Every blocking send in the pipeline gives up, so that handlers
		// waiting in admit go on to answer what their connection read.
		r.cancel()
	}
	return err
}

// drain lets every admitted event through the pipeline: once no admit can
// send any more, verifyCh is closed; the verify workers empty it and the
// last closes writeCh; the writer empties that and returns.
func (r *Relay) drain(ctx context.Context) error {
	if err := waitCtx(ctx, &r.senders); err != nil {
		return err
	}
	close(r.verifyCh)
	if !r.started {
		return nil
	}
	select {
	case <-r.writerDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drainContext bounds the drain: it ends a quarter of the time before ctx
// (at most closeWait before), which is left for answering what is still in
// flight and closing the connections.
func drainContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	keep := min(time.Until(deadline)/4, closeWait)
	return context.WithDeadline(ctx, deadline.Add(-keep))
}

func waitCtx(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		select {
		case <-done: // both ready: it finished in time
			return nil
		default:
			return ctx.Err()
		}
	}
}

// pingLoop pings every client each PingInterval and drops those that did
// not answer the previous ping: one goroutine and one timer for all
// connections, none per connection.
func (r *Relay) pingLoop() {
	t := time.NewTicker(r.cfg.PingInterval)
	defer t.Stop()
	var conns []*conn
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.connsMu.Lock()
		conns = conns[:0]
		for c := range r.conns {
			conns = append(conns, c)
		}
		r.connsMu.Unlock()
		for _, c := range conns {
			c.keepalive()
		}
		clear(conns) // don't keep closed connections alive until the next tick
	}
}

// Stats is a snapshot of the relay's running figures.
type Stats struct {
	Connections   int64 // open websocket connections
	Subscriptions int64 // open subscriptions
	Stored        int64 // events stored since start
	Duplicates    int64 // events answered duplicate since start
	Rejected      int64 // events refused since start
	SlowEvictions int64 // clients closed for not reading fast enough
	QueuedBytes   int64 // outbound bytes waiting for clients to read them
}

// Stats returns the relay's running figures.
func (r *Relay) Stats() Stats {
	return Stats{
		Connections:   r.stats.connections.Load(),
		Subscriptions: int64(r.index.size()),
		Stored:        r.stats.stored.Load(),
		Duplicates:    r.stats.duplicate.Load(),
		Rejected:      r.stats.rejected.Load(),
		SlowEvictions: r.stats.slowEvictions.Load(),
		QueuedBytes:   r.queuedBytes(),
	}
}

// queuedBytes sums the connections' outbound queues.
func (r *Relay) queuedBytes() int64 {
	r.connsMu.Lock()
	defer r.connsMu.Unlock()
	var n int64
	for c := range r.conns {
		n += int64(c.out.queued())
	}
	return n
}
