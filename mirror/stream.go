package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/relay"
)

// Live streams. A down worker keeps a subscription open on the remote
// relay and ingests every event it sends (source stream). Its position
// moves only over events the local relay has answered for good (stored,
// duplicate or refused; see downTracker): one answered `error:` ends the
// session and is fetched again. After a disconnect it reconnects with
// backoff and subscribes again from that position (inclusive: the second
// is sent again and deduplicated); when the remote answers that REQ with stored events, it
// pages back by until (with a limit) to the resume point, so that more
// events than the remote's limit published during the outage are not
// missed. An up worker follows the local store by sequence number (woken
// by Local.OnStored, and polling, so that it also sees what another
// process stored in the same database), skips the events that came from
// its own remote, and sends the rest; what was not answered before a
// disconnect is sent again. Both keep their position in the state file
// (Manager.StatePath) and resume from it after a restart.

const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 30 * time.Second
	pingEvery  = 30 * time.Second
	upInFlight = 256
	// upBatch is how many stored events an up worker reads at once.
	upBatch = 500
	// pageLimit is the limit of the REQs a down worker pages back with.
	pageLimit = 500
	// pageTimeout bounds the wait for each page's EOSE.
	pageTimeout = 30 * time.Second
)

// Manager runs the streams of a config file and reloads it when it changes.
type Manager struct {
	Path  string
	Local Local
	Store Store
	Log   *slog.Logger
	// ReloadEvery is how often the file is checked for changes and the
	// state saved (0: 2s).
	ReloadEvery time.Duration
	// StatePath is the file keeping the streams' positions across
	// restarts ("": not kept; down streams then start from now and up
	// streams from the last stored event).
	StatePath string
	// PollEvery is how often up streams look for events stored by another
	// process (0: 500ms); events stored by Local wake them at once.
	PollEvery time.Duration

	// fileMu serializes loading the file (Run) with Use; runCtx is Run's
	// context while it runs, stamp the file's version in force.
	fileMu sync.Mutex
	runCtx context.Context
	stamp  string

	mu      sync.Mutex
	running map[string]*running // by worker key
	stats   Stats
	pos     *positions
	origins origins
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
	if m.pos, err = loadPositions(m.StatePath); err != nil {
		return err
	}
	defer m.saveState()
	m.running = map[string]*running{}
	m.fileMu.Lock()
	m.runCtx, m.stamp = ctx, fileStamp(m.Path)
	m.apply(ctx, cfg)
	m.fileMu.Unlock()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.fileMu.Lock()
			m.runCtx = nil
			m.apply(ctx, &Config{})
			m.fileMu.Unlock()
			return nil
		case <-t.C:
		}
		m.saveState()
		m.reloadIfChanged(ctx)
	}
}

// reloadIfChanged loads the file again if it changed since it was loaded.
func (m *Manager) reloadIfChanged(ctx context.Context) {
	m.fileMu.Lock()
	defer m.fileMu.Unlock()
	s := fileStamp(m.Path)
	if s == m.stamp {
		return
	}
	m.stamp = s
	cfg, err := LoadConfig(m.Path)
	if err != nil {
		m.Log.Error("mirror config not reloaded; the running streams go on", "path", m.Path, "err", err)
		return
	}
	m.Log.Info("mirror config reloaded", "path", m.Path, "streams", len(cfg.Streams))
	m.apply(ctx, cfg)
}

// Use makes path the config file, and cfg (which the caller loaded from
// it) the streams to run, at once: streams cfg no longer has stop, new
// ones start, the others go on. It is for a caller that checks every file
// before it changes anything (wisp serve's reload); a Manager that is not
// running ignores it.
func (m *Manager) Use(path string, cfg *Config) {
	m.fileMu.Lock()
	defer m.fileMu.Unlock()
	if m.runCtx == nil {
		return
	}
	m.Path, m.stamp = path, fileStamp(path)
	m.apply(m.runCtx, cfg)
}

func (m *Manager) saveState() {
	if err := m.pos.save(); err != nil {
		m.Log.Warn("mirror positions not saved", "err", err)
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
	key := w.stateKey()
	if w.dir == Down {
		since, ok := m.pos.get(key)
		if !ok {
			since = int64(nostr.Now())
			m.pos.set(key, since)
		}
		d := &downWorker{m: m, w: w, key: key, plugin: plugin, since: nostr.Timestamp(since)}
		retry(ctx, m.Log, w, d.session)
		return
	}
	u := &upWorker{m: m, w: w, key: key, plugin: plugin, wake: make(chan struct{}, 1)}
	if seq, ok := m.pos.get(key); ok {
		u.pos = seq
	} else {
		seq, err := m.Store.LastSeq(ctx)
		if err != nil {
			m.Log.Error("mirror stream: read the store", "stream", w.stream.Name, "err", err)
			return
		}
		u.pos = seq
		m.pos.set(key, seq)
	}
	remove := m.Local.OnStored(func(relay.StoredEvent) {
		select {
		case u.wake <- struct{}{}:
		default:
		}
	})
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
	key    string
	plugin *policy.Plugin

	// since is the resume point: every matching event the remote had
	// before it has been stored here (or refused for good). Ingest's
	// answers move it, on the writer's goroutine, hence the lock.
	mu    sync.Mutex
	since nostr.Timestamp
}

func (d *downWorker) resumePoint() nostr.Timestamp {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.since
}

// moveTo sets the resume point to t: forward as events are stored, or back
// to an event that was not, so that the next session fetches it again.
func (d *downWorker) moveTo(t nostr.Timestamp, back bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t > d.since || back && t < d.since {
		d.since = t
		d.m.pos.set(d.key, int64(t))
	}
}

// downTracker moves a down worker's resume point over the events of one
// session in the order they arrived, and only once the local relay has
// answered each for good (stored, duplicate, refused): an event not
// answered yet holds it back. One answered `error:` (the relay failed or
// is shutting down: try again) stops it for the rest of the session, sets
// it back to that event's second if it was past it, and ends the session
// (failed), so that the next one fetches the event again.
type downTracker struct {
	d      *downWorker
	mu     sync.Mutex
	marks  []*downMark
	failed chan struct{} // closed at the first failure
	fail   bool
	limit  nostr.Timestamp // after a failure, the point may not pass this
}

type downMark struct {
	at   nostr.Timestamp // the event's created_at
	to   nostr.Timestamp // where the point may move once it is answered (0: nowhere)
	done bool
}

func newDownTracker(d *downWorker) *downTracker {
	return &downTracker{d: d, failed: make(chan struct{})}
}

// track notes an event received, before it is ingested; to is where the
// point may move once it and every event before it are answered.
func (t *downTracker) track(at, to nostr.Timestamp) *downMark {
	m := &downMark{at: at, to: to}
	t.mu.Lock()
	t.marks = append(t.marks, m)
	t.mu.Unlock()
	return m
}

// upTo moves the point to at once every event received so far is answered.
func (t *downTracker) upTo(at nostr.Timestamp) {
	t.settle(t.track(at, at), true)
}

// settle records the answer for m: final, or to be tried again.
func (t *downTracker) settle(m *downMark, final bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !final {
		if !t.fail {
			t.fail, t.limit = true, m.at
			close(t.failed)
		}
		t.limit = min(t.limit, m.at)
		t.d.moveTo(t.limit, true)
		return
	}
	m.done = true
	to := nostr.Timestamp(0)
	for len(t.marks) > 0 && t.marks[0].done {
		to = max(to, t.marks[0].to)
		t.marks[0] = nil
		t.marks = t.marks[1:]
	}
	if t.fail {
		to = min(to, t.limit)
	}
	if to > 0 {
		t.d.moveTo(to, false)
	}
}

// final reports whether an ingest answer is for good: anything but
// `error:`, which asks to try again.
func final(r relay.IngestResult) bool {
	return r.Outcome != relay.IngestRejected || !strings.HasPrefix(r.Reason, "error:")
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

	resume := d.resumePoint()
	newest := resume
	tr := newDownTracker(d)
	want := d.w.stream.filter
	opt := relay.IngestOptions{Source: wisp.SourceStream, Remote: d.w.url}
	// Until the backlog since resume is complete, the resume point stays
	// where it was; seen holds the ids received meanwhile.
	caughtUp := false
	seen := map[string]struct{}{}
	handle := func(m msg) (ev *nostr.Event, fresh bool) {
		if len(m.args) < 2 {
			return nil, false
		}
		ev = &nostr.Event{}
		if json.Unmarshal(m.args[1], ev) != nil || !want.Matches(ev) {
			return nil, false
		}
		if !caughtUp {
			if _, dup := seen[ev.ID]; dup {
				return ev, false
			}
			seen[ev.ID] = struct{}{}
		}
		d.m.stats.Received.Add(1)
		newest = max(newest, ev.CreatedAt)
		// While catching up, only the end of the backlog moves the point
		// (finish); then each live event does, once it is answered.
		to := nostr.Timestamp(0)
		if caughtUp {
			to = ev.CreatedAt
		}
		mark := tr.track(ev.CreatedAt, to)
		if d.plugin != nil {
			dec := d.plugin.Check(ctx, &wisp.Input{Event: ev, Source: wisp.SourceStream, Remote: d.w.url, Received: time.Now()})
			if dec.Action != wisp.Accept {
				tr.settle(mark, true)
				return ev, true
			}
		}
		d.m.origins.note(ev.ID, d.w.url)
		d.m.Local.Ingest(ctx, ev, opt, func(r relay.IngestResult) {
			if r.Outcome == relay.IngestStored {
				d.m.stats.Stored.Add(1)
			}
			tr.settle(mark, final(r))
		})
		return ev, true
	}
	finish := func() {
		caughtUp = true
		seen = nil
		tr.upTo(newest)
	}

	liveID := randomID("mirror-")
	live := c.subscribe(liveID, 1024)
	f := want
	f.Since = &resume
	f.Limit = pageLimit
	if err := c.sendJSON(ctx, "REQ", liveID, f); err != nil {
		return err
	}
	stored, oldest := 0, nostr.Timestamp(math.MaxInt64) // stored events before the live EOSE
	liveEOSE := false

	// Paging back from the oldest stored event the live REQ returned.
	var (
		pageID                string
		page                  chan msg // nil: no page open
		pageTimer             <-chan time.Time
		pageUntil, pageOldest nostr.Timestamp
		pageGot, pageFresh    int
	)
	startPage := func(until nostr.Timestamp) error {
		pageID = randomID("mirror-page-")
		page = c.subscribe(pageID, 1024)
		pageUntil, pageOldest, pageGot, pageFresh = until, until, 0, 0
		pf := want
		pf.Since, pf.Until, pf.Limit = &resume, &until, pageLimit
		pageTimer = time.After(pageTimeout)
		return c.sendJSON(ctx, "REQ", pageID, pf)
	}
	endPage := func() {
		_ = c.sendJSON(ctx, "CLOSE", pageID)
		c.unsubscribe(pageID)
		page, pageTimer = nil, nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.done:
			return c.closedErr()
		case <-tr.failed:
			return errors.New("an event was not stored here; fetching it again")
		case <-pageTimer:
			return fmt.Errorf("no EOSE within %s while catching up", pageTimeout)
		case m := <-live:
			switch m.verb {
			case "CLOSED":
				return fmt.Errorf("subscription closed: %s", m.str(1))
			case "EOSE":
				if liveEOSE {
					continue
				}
				liveEOSE = true
				if stored == 0 {
					finish()
					continue
				}
				if err := startPage(oldest); err != nil {
					return err
				}
			case "EVENT":
				ev, _ := handle(m)
				if ev != nil && !liveEOSE {
					stored++
					oldest = min(oldest, ev.CreatedAt)
				}
			}
		case m := <-page:
			switch m.verb {
			case "CLOSED":
				return fmt.Errorf("subscription closed: %s", m.str(1))
			case "EVENT":
				ev, fresh := handle(m)
				if ev == nil {
					continue
				}
				pageGot++
				pageOldest = min(pageOldest, ev.CreatedAt)
				if fresh {
					pageFresh++
				}
			case "EOSE":
				endPage()
				if pageGot == 0 {
					finish()
					continue
				}
				// Go on from the oldest second seen, inclusive, so that
				// events sharing it are not lost; when the page brought
				// nothing new or fell in one second, move past it.
				next := pageOldest
				if pageFresh == 0 || pageOldest == pageUntil {
					next = pageOldest - 1
				}
				if next < resume {
					finish()
					continue
				}
				d.m.Log.Debug("mirror stream catching up", "stream", d.w.stream.Name, "url", d.w.url, "until", next)
				if err := startPage(next); err != nil {
					return err
				}
			}
		}
	}
}

type upWorker struct {
	m      *Manager
	w      worker
	key    string
	plugin *policy.Plugin
	wake   chan struct{}
	// pos is the sequence number up to which every stored event was sent
	// and answered, or skipped.
	pos int64
}

// seqTracker moves an up worker's position over the events answered, in
// the order they were read, so that one still unanswered holds it back.
type seqTracker struct {
	mu    sync.Mutex
	pos   int64
	order []int64
	done  map[int64]bool
}

func (t *seqTracker) add(seq int64) {
	t.mu.Lock()
	t.order = append(t.order, seq)
	t.mu.Unlock()
}

func (t *seqTracker) finish(seq int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done[seq] = true
	for len(t.order) > 0 && t.done[t.order[0]] {
		t.pos = t.order[0]
		delete(t.done, t.pos)
		t.order = t.order[1:]
	}
}

func (t *seqTracker) position() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos
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
	tr := &seqTracker{pos: u.pos, done: map[int64]bool{}}
	defer func() {
		cancel()
		c.close()
		answers.Wait()
		// What was not answered is read and sent again after reconnecting.
		u.pos = tr.position()
		u.m.pos.set(u.key, u.pos)
	}()
	every := u.m.PollEvery
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	poll := time.NewTicker(every)
	defer poll.Stop()

	type stored struct {
		seq int64
		raw []byte
	}
	cursor := u.pos
	for {
		var batch []stored
		err := u.m.Store.EventsAfter(ctx, cursor, upBatch, func(seq int64, raw []byte) error {
			batch = append(batch, stored{seq, append([]byte(nil), raw...)})
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read stored events: %w", err)
		}
		for _, it := range batch {
			cursor = it.seq
			tr.add(it.seq)
			var ev nostr.Event
			if json.Unmarshal(it.raw, &ev) != nil || !u.w.stream.filter.Matches(&ev) || u.m.origins.from(ev.ID, u.w.url) {
				tr.finish(it.seq) // never echo an event to the relay it came from
				continue
			}
			if u.plugin != nil {
				dec := u.plugin.Check(ctx, &wisp.Input{Event: &ev, Raw: it.raw, Source: wisp.SourceStream, Remote: u.w.url, Received: time.Now()})
				if dec.Action != wisp.Accept {
					tr.finish(it.seq)
					continue
				}
			}
			select {
			case sem <- struct{}{}:
			case <-c.done:
				return c.closedErr()
			case <-ctx.Done():
				return nil
			}
			okc, err := c.publish(ctx, ev.ID, it.raw)
			if err != nil {
				<-sem
				return err
			}
			u.m.stats.Sent.Add(1)
			seq, id := it.seq, ev.ID
			answers.Go(func() {
				defer func() { <-sem }()
				select {
				case r := <-okc:
					tr.finish(seq)
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
		}
		u.m.pos.set(u.key, tr.position())
		if len(batch) == upBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.done:
			return c.closedErr()
		case <-u.wake:
		case <-poll.C:
		}
	}
}
