package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/wisp-relay/wisp/storage"
)

var _ storage.Watcher = (*Store)(nil)

// The channels the store's writes notify, on their database. A notice is
// sent inside the writing transaction, so PostgreSQL delivers it at commit
// and never for a write that rolled back.
const (
	// channelEvents: a Save batch stored or deleted events (the payload is
	// the batch's highest seq, or "" when it only deleted), or expiry,
	// retention or a moderation delete removed some ("").
	channelEvents = "wisp_events"
	// channelModeration: a NIP-86 list entry or setting was written.
	channelModeration = "wisp_moderation"
)

// The listening connection's reconnection delays: doubling from the first
// to the cap.
const (
	watchBackoffFirst = 100 * time.Millisecond
	watchBackoffMax   = 5 * time.Second
)

// notify sends a notice outside a transaction (after chunked deletes,
// each chunk its own transaction). A notice that fails to go is only a
// late one: listeners poll as well.
func (s *Store) notify(ctx context.Context, channel string) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	_, _ = s.pool.Exec(ctx, "SELECT pg_notify($1, '')", channel)
}

// Watch implements storage.Watcher with LISTEN on a connection of its own,
// outside the pool, which every Watch of the store shares (a node's
// follower and its moderation lists hear the same notices). It calls
// fn(storage.ChangedAll) once the connection listens (at once when it
// already does; what committed before LISTEN took effect is not
// announced), then once per notice. A lost connection is reconnected after
// a delay doubling from 100 ms to 5 s, and every Watch is then told
// ChangedAll. It returns ctx's error when ctx ends, or storage.ErrClosed
// once Close begins. The connection closes when the last Watch returns.
func (s *Store) Watch(ctx context.Context, fn func(storage.Change)) error {
	if err := s.enter(); err != nil {
		return err
	}
	// The store may be closed while Watch runs: end with it, rather than
	// hold Close up.
	s.mu.RUnlock()
	h := &s.watchers
	h.mu.Lock()
	if h.fns == nil {
		h.fns = map[int]func(storage.Change){}
	}
	id := h.next
	h.next++
	h.fns[id] = fn
	if h.run == nil {
		lctx, cancel := context.WithCancel(context.Background())
		h.run = &listenRun{cancel: cancel, done: make(chan struct{})}
		go s.listenLoop(lctx, h.run)
	} else if h.run.up {
		fn(storage.ChangedAll)
	}
	h.mu.Unlock()

	var err error
	select {
	case <-ctx.Done():
		err = context.Cause(ctx)
	case <-s.closing:
		err = storage.ErrClosed
	}
	h.mu.Lock()
	delete(h.fns, id)
	var last *listenRun
	if len(h.fns) == 0 {
		last, h.run = h.run, nil
	}
	h.mu.Unlock()
	if last != nil {
		last.cancel()
		<-last.done
	}
	return err
}

// watchers are a store's Watch calls and the listening connection they
// share.
type watchers struct {
	mu   sync.Mutex // held while fns are called: they never overlap
	fns  map[int]func(storage.Change)
	next int
	run  *listenRun // nil while nobody watches
}

// listenRun is one listening loop; a Watch starts it, the last to return
// stops it.
type listenRun struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has closed its connection
	up     bool          // listening now (under watchers.mu)
}

// tell passes c to every Watch, if run is still the store's loop (one
// being stopped is not).
func (h *watchers) tell(run *listenRun, c storage.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.run != run {
		return
	}
	for _, fn := range h.fns {
		fn(c)
	}
}

// setUp records whether run listens.
func (h *watchers) setUp(run *listenRun, up bool) {
	h.mu.Lock()
	run.up = up
	h.mu.Unlock()
}

// listenLoop listens until ctx ends, reconnecting with backoff.
func (s *Store) listenLoop(ctx context.Context, run *listenRun) {
	defer close(run.done)
	h := &s.watchers
	backoff := watchBackoffFirst
	for {
		conn, err := s.listen(ctx)
		if err == nil {
			backoff = watchBackoffFirst
			h.setUp(run, true)
			h.tell(run, storage.ChangedAll)
			s.receive(ctx, conn, func(c storage.Change) { h.tell(run, c) })
			h.setUp(run, false)
			closeCtx, done := context.WithTimeout(context.Background(), time.Second)
			_ = conn.Close(closeCtx)
			done()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, watchBackoffMax)
	}
}

// listen opens the listening connection.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	cfg := s.listenCfg.Copy()
	cfg.RuntimeParams["application_name"] += " listen"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("watch: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+channelEvents+"; LISTEN "+channelModeration); err != nil {
		closeCtx, done := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(closeCtx)
		done()
		return nil, fmt.Errorf("watch: listen: %w", err)
	}
	return conn, nil
}

// receive passes notices on until the connection fails or ctx ends. A
// connection that is up but silent is found out by TCP keepalive (see
// Options.Timeout) or by the server closing it.
func (s *Store) receive(ctx context.Context, conn *pgx.Conn, fn func(storage.Change)) {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return // Watch reconnects, or returns when ctx ended
		}
		switch n.Channel {
		case channelEvents:
			// A Save of this store's (payload: its highest seq) is its
			// caller's own: the relay's writer, which fans its events
			// out itself. Deletions are announced whoever made them.
			if n.Payload != "" && s.own.has(n.PID) {
				continue
			}
			fn(storage.ChangedEvents)
		case channelModeration:
			fn(storage.ChangedModeration)
		}
	}
}

// pidSet is the server process ids of a pool's open connections. A stale
// id (a connection dropped without the pool closing it, or a new server
// after a failover reusing it) only makes another store's notice look like
// this one's: its events then reach the follower at its next poll.
type pidSet struct {
	mu   sync.Mutex
	pids map[uint32]struct{}
}

// track makes cfg's pool record its connections in p.
func (p *pidSet) track(cfg *pgxpool.Config) {
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if after != nil {
			if err := after(ctx, c); err != nil {
				return err
			}
		}
		p.mu.Lock()
		p.pids[c.PgConn().PID()] = struct{}{}
		p.mu.Unlock()
		return nil
	}
	before := cfg.BeforeClose
	cfg.BeforeClose = func(c *pgx.Conn) {
		if before != nil {
			before(c)
		}
		p.mu.Lock()
		delete(p.pids, c.PgConn().PID())
		p.mu.Unlock()
	}
}

func (p *pidSet) has(pid uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.pids[pid]
	return ok
}
