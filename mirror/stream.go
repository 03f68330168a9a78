package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/relay"
)

// Live streams. A down worker keeps a subscription open on the remote
// relay and ingests every event it sends (source stream); after a
// disconnect it reconnects with backoff and subscribes again from the
// newest created_at it saw (inclusive: the second is sent again and
// deduplicated, so nothing in it is lost). An up worker is told about each
// event stored here (Local.OnStored), skips those that came from its own
// remote, and sends the rest; events whose OK never came, or that did not
// fit its queue, are sent again from the store after it reconnects.

const (
	minBackoff   = 250 * time.Millisecond
	maxBackoff   = 30 * time.Second
	pingEvery    = 30 * time.Second
	upQueue      = 8192
	upInFlight   = 256
	catchUpLimit = 5000
)

// Manager runs the streams of a config file and reloads it when it changes.
type Manager struct {
	Path  string
	Local Local
	Store Store
	Log   *slog.Logger
	// ReloadEvery is how often the file is checked for changes (0: 2s).
	ReloadEvery time.Duration

	mu      sync.Mutex
	running map[string]*running // by worker key
	stats   Stats
}

// Stats are the running figures of all streams.
type Stats struct {
	Received, Stored, Sent, Accepted, Refused, Connects atomic.Int64
}

type running struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Stats returns the live figures.
func (m *Manager) Stats() *Stats { return &m.stats }

// Run loads the config, runs its streams until ctx ends and reloads the
// file when it changes (a broken file is logged and the running streams
// are kept). It fails only when the file cannot be loaded at start.
func (m *Manager) Run(ctx context.Context) error {
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	every := m.ReloadEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	cfg, err := LoadConfig(m.Path)
	if err != nil {
		return err
	}
	m.running = map[string]*running{}
	stamp := fileStamp(m.Path)
	m.apply(ctx, cfg)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.apply(ctx, &Config{})
			return nil
		case <-t.C:
		}
		s := fileStamp(m.Path)
		if s == stamp {
			continue
		}
		stamp = s
		cfg, err := LoadConfig(m.Path)
		if err != nil {
			m.Log.Error("mirror config not reloaded; the running streams go on", "path", m.Path, "err", err)
			continue
		}
		m.Log.Info("mirror config reloaded", "path", m.Path, "streams", len(cfg.Streams))
		m.apply(ctx, cfg)
	}
}

func fileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d/%d", fi.ModTime().UnixNano(), fi.Size())
}

// worker is one direction of one stream with one remote relay.
type worker struct {
	stream StreamConfig
	url    string
	dir    Direction // Down or Up
}

func (w worker) key() string {
	b, _ := json.Marshal(w.stream)
	return fmt.Sprintf("%s|%s|%s", w.dir, w.url, b)
}

// apply starts the workers of cfg that are not running and stops the
// running ones that cfg no longer has.
func (m *Manager) apply(ctx context.Context, cfg *Config) {
	want := map[string]worker{}
	for _, s := range cfg.Streams {
		for _, u := range s.URLs {
			for _, d := range []Direction{Down, Up} {
				if s.dir&d != 0 {
					w := worker{stream: s, url: u, dir: d}
					want[w.key()] = w
				}
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var stopping []*running
	for k, r := range m.running {
		if _, ok := want[k]; !ok {
			r.cancel()
			stopping = append(stopping, r)
			delete(m.running, k)
		}
	}
	for _, r := range stopping {
		<-r.done
	}
	for k, w := range want {
		if _, ok := m.running[k]; ok || ctx.Err() != nil {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		r := &running{cancel: cancel, done: make(chan struct{})}
		m.running[k] = r
		m.Log.Info("mirror stream started", "stream", w.stream.Name, "dir", w.dir, "url", w.url)
		go func() {
			defer close(r.done)
			m.runWorker(wctx, w)
		}()
	}
}

func (m *Manager) runWorker(ctx context.Context, w worker) {
	var plugin *policy.Plugin
	cmd := w.stream.PluginDown
	if w.dir == Up {
		cmd = w.stream.PluginUp
	}
	if cmd != "" {
		p, err := policy.NewPlugin(cmd, w.stream.timeout, m.Log)
		if err != nil {
			m.Log.Error("mirror stream plugin", "stream", w.stream.Name, "err", err)
			return
		}
		plugin = p
		defer p.Close()
	}
	if w.dir == Down {
		d := &downWorker{m: m, w: w, plugin: plugin, since: nostr.Now()}
		retry(ctx, m.Log, w, d.session)
		return
	}
	u := &upWorker{m: m, w: w, plugin: plugin, queue: make(chan relay.StoredEvent, upQueue), inflight: map[string]nostr.Timestamp{}}
	remove := m.Local.OnStored(u.offer)
	defer remove()
	retry(ctx, m.Log, w, u.session)
}

// retry runs session until ctx ends, reconnecting with jittered
// exponential backoff; a session that lasted a while resets the backoff.
func retry(ctx context.Context, log *slog.Logger, w worker, session func(ctx context.Context) error) {
	backoff := minBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > maxBackoff {
			backoff = minBackoff
		}
		log.Warn("mirror stream disconnected; reconnecting", "stream", w.stream.Name, "dir", w.dir, "url", w.url, "err", err, "in", backoff)
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// keepAlive pings the remote relay and closes a connection that stops
// answering, so that a dead peer never holds a stream forever.
func keepAlive(ctx context.Context, c *client) {
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.ws.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				c.ws.CloseNow()
				return
			}
		}
	}
}

type downWorker struct {
	m      *Manager
	w      worker
	plugin *policy.Plugin
	since  nostr.Timestamp // newest created_at seen
}

func (d *downWorker) session(ctx context.Context) error {
	c, err := dial(ctx, d.w.url)
	if err != nil {
		return err
	}
	defer c.close()
	d.m.stats.Connects.Add(1)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go keepAlive(sctx, c)
	id := randomID("mirror-")
	sub := c.subscribe(id, 1024)
	f := d.w.stream.filter
	since := d.since
	f.Since = &since
	if err := c.sendJSON(ctx, "REQ", id, f); err != nil {
		return err
	}
	want := d.w.stream.filter
	opt := relay.IngestOptions{Source: policy.SourceStream, Remote: d.w.url}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.done:
			return c.closedErr()
		case m := <-sub:
			switch m.verb {
			case "CLOSED":
				return fmt.Errorf("subscription closed: %s", m.str(1))
			case "EVENT":
				if len(m.args) < 2 {
					continue
				}
				var ev nostr.Event
				if json.Unmarshal(m.args[1], &ev) != nil || !want.Matches(&ev) {
					continue
				}
				d.m.stats.Received.Add(1)
				if ev.CreatedAt > d.since {
					d.since = ev.CreatedAt
				}
				if d.plugin != nil {
					dec := d.plugin.Check(ctx, &policy.Input{Event: &ev, Source: policy.SourceStream, Remote: d.w.url, Received: time.Now()})
					if dec.Action != policy.Accept {
						continue
					}
				}
				d.m.Local.Ingest(ctx, &ev, opt, func(r relay.IngestResult) {
					if r.Outcome == relay.IngestStored {
						d.m.stats.Stored.Add(1)
					}
				})
			}
		}
	}
}

type upWorker struct {
	m      *Manager
	w      worker
	plugin *policy.Plugin
	queue  chan relay.StoredEvent

	mu       sync.Mutex
	inflight map[string]nostr.Timestamp // sent, not answered
	resume   nostr.Timestamp            // send again from the store from here (0: nothing)
}

// offer is the stored-event hook: it never blocks the writer.
func (u *upWorker) offer(e relay.StoredEvent) {
	if e.Origin == u.w.url || !u.w.stream.filter.Matches(e.Event) {
		return // never echo an event to the relay it came from
	}
	select {
	case u.queue <- e:
	default:
		u.lost(e.Event.CreatedAt)
	}
}

// lost marks an event to be sent again from the store.
func (u *upWorker) lost(t nostr.Timestamp) {
	u.mu.Lock()
	if u.resume == 0 || t < u.resume {
		u.resume = t
	}
	u.mu.Unlock()
}

func (u *upWorker) session(ctx context.Context) error {
	c, err := dial(ctx, u.w.url)
	if err != nil {
		return err
	}
	u.m.stats.Connects.Add(1)
	sctx, cancel := context.WithCancel(ctx)
	go keepAlive(sctx, c)
	var answers sync.WaitGroup
	sem := make(chan struct{}, upInFlight)
	defer func() {
		cancel()
		c.close()
		answers.Wait()
		// What was sent and not answered goes again after reconnecting.
		u.mu.Lock()
		for _, t := range u.inflight {
			if u.resume == 0 || t < u.resume {
				u.resume = t
			}
		}
		clear(u.inflight)
		u.mu.Unlock()
	}()

	send := func(id string, t nostr.Timestamp, ev *nostr.Event, raw []byte) error {
		if u.plugin != nil {
			dec := u.plugin.Check(ctx, &policy.Input{Event: ev, Raw: raw, Source: policy.SourceStream, Remote: u.w.url, Received: time.Now()})
			if dec.Action != policy.Accept {
				return nil
			}
		}
		select {
		case sem <- struct{}{}:
		case <-c.done:
			u.lost(t)
			return c.closedErr()
		case <-ctx.Done():
			u.lost(t)
			return nil
		}
		u.mu.Lock()
		u.inflight[id] = t
		u.mu.Unlock()
		okc, err := c.publish(ctx, id, raw)
		if err != nil {
			<-sem
			return err // inflight keeps it: sent again later
		}
		u.m.stats.Sent.Add(1)
		answers.Go(func() {
			defer func() { <-sem }()
			select {
			case r := <-okc:
				u.mu.Lock()
				delete(u.inflight, id)
				u.mu.Unlock()
				if r.ok {
					u.m.stats.Accepted.Add(1)
				} else {
					u.m.stats.Refused.Add(1)
					u.m.Log.Debug("remote relay refused a mirrored event", "url", u.w.url, "id", id, "reason", r.reason)
				}
			case <-time.After(30 * time.Second):
				c.forget(id)
				c.ws.CloseNow() // a relay that does not answer is reconnected
			case <-c.done:
			}
		})
		return nil
	}

	// Catch up with what was lost or unanswered before.
	u.mu.Lock()
	resume := u.resume
	u.resume = 0
	u.mu.Unlock()
	if resume != 0 {
		f := u.w.stream.filter
		f.Since = &resume
		f.Limit = catchUpLimit
		var raws [][]byte
		if _, err := u.m.Store.Query(ctx, []nostr.Filter{f}, func(raw []byte) error {
			raws = append(raws, append([]byte(nil), raw...))
			return nil
		}); err != nil {
			u.lost(resume)
			return fmt.Errorf("read events to send again: %w", err)
		}
		for _, raw := range slices.Backward(raws) {
			var ev nostr.Event
			if json.Unmarshal(raw, &ev) != nil {
				continue
			}
			if err := send(ev.ID, ev.CreatedAt, &ev, raw); err != nil {
				u.lost(resume)
				return err
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.done:
			return c.closedErr()
		case e := <-u.queue:
			if err := send(e.Event.ID, e.Event.CreatedAt, e.Event, e.Raw); err != nil {
				u.lost(e.Event.CreatedAt)
				return err
			}
		}
	}
}
