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
// outside the pool. It calls fn(storage.ChangedAll) each time it starts
// listening, the first time included (what committed before LISTEN took
// effect is not announced), then once per notice. A lost connection is
// reconnected after a delay doubling from 100 ms to 5 s. It returns ctx's
// error when ctx ends, or storage.ErrClosed once Close begins.
func (s *Store) Watch(ctx context.Context, fn func(storage.Change)) error {
	if err := s.enter(); err != nil {
		return err
	}
	// The store may be closed while Watch runs: end with it, rather than
	// hold Close up.
	s.mu.RUnlock()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-s.closing:
			cancel(storage.ErrClosed)
		case <-ctx.Done():
		}
	}()

	backoff := watchBackoffFirst
	for {
		conn, err := s.listen(ctx)
		if err == nil {
			backoff = watchBackoffFirst
			fn(storage.ChangedAll)
			s.receive(ctx, conn, fn)
			closeCtx, done := context.WithTimeout(context.Background(), time.Second)
			_ = conn.Close(closeCtx)
			done()
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
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
