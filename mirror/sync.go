package mirror

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip77/negentropy"
	"github.com/nbd-wtf/go-nostr/nip77/negentropy/storage/vector"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage"
)

// Local is this relay, as mirror needs it; *relay.Relay implements it.
type Local interface {
	// Ingest feeds an event through the relay's checks, policy and writer.
	Ingest(ctx context.Context, ev *nostr.Event, opt relay.IngestOptions, done func(relay.IngestResult))
	// OnStored registers a hook told about every stored event.
	OnStored(fn func(relay.StoredEvent)) (remove func())
}

// Store is the local event store, as sync and the streams read it.
type Store interface {
	storage.Store
	storage.IDLister
	storage.SeqLister
}

var _ Local = (*relay.Relay)(nil)

// Direction says which way events move.
type Direction int

const (
	// Down: from the remote relay to this one.
	Down Direction = 1 << iota
	// Up: from this relay to the remote one.
	Up
	// Both ways.
	Both = Down | Up
)

// ParseDirection reads down, up or both.
func ParseDirection(s string) (Direction, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "down":
		return Down, nil
	case "up":
		return Up, nil
	case "both":
		return Both, nil
	}
	return 0, fmt.Errorf("direction %q: want down, up or both", s)
}

func (d Direction) String() string {
	switch d {
	case Down:
		return "down"
	case Up:
		return "up"
	case Both:
		return "both"
	}
	return "none"
}

// SyncOptions configure one sync with a remote relay.
type SyncOptions struct {
	URL    string
	Filter nostr.Filter // limit is ignored
	Dir    Direction
	Local  Local
	Store  Store
	// Timeout bounds every wait on the remote relay: the first answer to
	// NEG-OPEN (silence means no NIP-77: fall back to REQ), each later
	// message, each REQ until EOSE, each OK (0: 15s).
	Timeout time.Duration
	// Batch is how many ids one REQ asks for, and PageSize the limit of one
	// fallback page (0: 100 and 500).
	Batch, PageSize int
	// InFlight bounds the EVENTs sent up and not yet answered (0: 64).
	InFlight int
	// MaxEvents caps the local events listed for negentropy (0: 10000000).
	MaxEvents int
	// Progress, if set, is called now and then from one goroutine.
	Progress func(SyncStats)
	Log      *slog.Logger
}

// SyncStats are the figures of a sync.
type SyncStats struct {
	Method     string // "negentropy" or "req" (fallback)
	Fallback   string // why negentropy was not used
	Local      int    // local events in the filter
	Have, Need int    // events only here, only there

	Downloaded int64 // events received
	Stored     int64
	Duplicate  int64
	Rejected   int64

	Uploaded       int64 // events sent up and accepted
	UploadRejected int64
}

// errNoNegentropy: the remote relay does not speak NIP-77.
type errNoNegentropy struct{ why string }

func (e *errNoNegentropy) Error() string { return "no negentropy: " + e.why }

type syncer struct {
	opt   SyncOptions
	c     *client
	log   *slog.Logger
	stats SyncStats
	// counters updated by ingest callbacks
	downloaded, uploaded, upRejected atomic.Int64
	down                             relay.IngestTally
	ingests                          sync.WaitGroup
	lastProgress                     time.Time
}

// Sync reconciles the local store with a remote relay: negentropy when the
// remote speaks NIP-77, else paging REQ by until; then it downloads what is
// missing here (through Local.Ingest, source sync) and uploads what is
// missing there. It never waits on the remote longer than Timeout at once.
func Sync(ctx context.Context, opt SyncOptions) (SyncStats, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 15 * time.Second
	}
	if opt.Batch <= 0 {
		opt.Batch = 100
	}
	if opt.PageSize <= 0 {
		opt.PageSize = 500
	}
	if opt.InFlight <= 0 {
		opt.InFlight = 64
	}
	if opt.MaxEvents <= 0 {
		opt.MaxEvents = 10_000_000
	}
	if opt.Dir == 0 {
		opt.Dir = Down
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	opt.Filter.Limit, opt.Filter.LimitZero = 0, false
	s := &syncer{opt: opt, log: opt.Log}
	c, err := dial(ctx, opt.URL)
	if err != nil {
		return s.stats, err
	}
	s.c = c
	defer c.close()

	err = s.run(ctx)
	s.ingests.Wait()
	s.collect()
	return s.stats, err
}

func (s *syncer) collect() {
	s.stats.Downloaded = s.downloaded.Load()
	s.stats.Stored = s.down.Stored.Load()
	s.stats.Duplicate = s.down.Duplicate.Load()
	s.stats.Rejected = s.down.Rejected.Load()
	s.stats.Uploaded = s.uploaded.Load()
	s.stats.UploadRejected = s.upRejected.Load()
}

func (s *syncer) progress(force bool) {
	if s.opt.Progress == nil || (!force && time.Since(s.lastProgress) < 200*time.Millisecond) {
		return
	}
	s.lastProgress = time.Now()
	s.collect()
	s.opt.Progress(s.stats)
}

func (s *syncer) run(ctx context.Context) error {
	have, need, err := s.reconcile(ctx)
	var noNeg *errNoNegentropy
	switch {
	case err == nil:
		s.stats.Method = "negentropy"
		s.stats.Have, s.stats.Need = len(have), len(need)
		s.progress(true)
		if s.opt.Dir&Down != 0 {
			if err := s.download(ctx, need); err != nil {
				return err
			}
		}
		if s.opt.Dir&Up != 0 {
			if err := s.upload(ctx, have); err != nil {
				return err
			}
		}
		return nil
	case errors.As(err, &noNeg):
		s.stats.Method, s.stats.Fallback = "req", noNeg.why
		s.log.Info("remote relay does not do negentropy; paging with REQ", "url", s.opt.URL, "why", noNeg.why)
		return s.fallback(ctx)
	default:
		return err
	}
}

func randomID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// reconcile runs a negentropy session and returns the ids only here
// (have) and only there (need).
func (s *syncer) reconcile(ctx context.Context) (have, need []string, err error) {
	vec := vector.New()
	n := 0
	err = s.opt.Store.ListIDs(ctx, []nostr.Filter{s.opt.Filter}, s.opt.MaxEvents, func(createdAt int64, id []byte) error {
		vec.Insert(nostr.Timestamp(createdAt), hex.EncodeToString(id))
		n++
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list local events: %w", err)
	}
	vec.Seal()
	s.stats.Local = n
	// 60000 bytes, 120 KB of hex: under strfry's default message limit.
	neg := negentropy.New(vec, 60000)

	stop := make(chan struct{})
	var collectors sync.WaitGroup
	gather := func(ch chan string, into *[]string) { *into = gatherUnique(ch, stop) }
	collectors.Go(func() { gather(neg.Haves, &have) })
	collectors.Go(func() { gather(neg.HaveNots, &need) })
	finished := false
	defer func() {
		if !finished {
			close(stop)
		}
		collectors.Wait()
	}()

	id := randomID("neg-")
	sub := s.c.subscribe(id, 8)
	defer s.c.unsubscribe(id)
	if err := s.c.sendJSON(ctx, "NEG-OPEN", id, s.opt.Filter, neg.Start()); err != nil {
		return nil, nil, err
	}
	answered := false
	timer := time.NewTimer(s.opt.Timeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-s.c.done:
			return nil, nil, s.c.closedErr()
		case notice := <-s.c.notices:
			if !answered {
				return nil, nil, &errNoNegentropy{"NOTICE: " + notice}
			}
			s.log.Info("notice from remote relay", "url", s.opt.URL, "notice", notice)
		case <-timer.C:
			if !answered {
				return nil, nil, &errNoNegentropy{fmt.Sprintf("no answer to NEG-OPEN within %s", s.opt.Timeout)}
			}
			return nil, nil, fmt.Errorf("negentropy with %s: no answer within %s", s.opt.URL, s.opt.Timeout)
		case m := <-sub:
			switch m.verb {
			case "NEG-ERR", "CLOSED":
				if !answered {
					return nil, nil, &errNoNegentropy{m.verb + ": " + m.str(1)}
				}
				return nil, nil, fmt.Errorf("negentropy with %s: %s %s", s.opt.URL, m.verb, m.str(1))
			case "NEG-MSG":
				answered = true
				out, err := neg.Reconcile(m.str(1))
				if err != nil {
					return nil, nil, fmt.Errorf("negentropy with %s: %w", s.opt.URL, err)
				}
				if out == "" { // done: Reconcile closed Haves and HaveNots
					finished = true
					collectors.Wait()
					_ = s.c.sendJSON(ctx, "NEG-CLOSE", id)
					return have, need, nil
				}
				if err := s.c.sendJSON(ctx, "NEG-MSG", id, out); err != nil {
					return nil, nil, err
				}
				timer.Reset(s.opt.Timeout)
			}
		}
	}
}

// ingest hands a remote event to the local relay and counts the outcome.
func (s *syncer) ingest(ctx context.Context, ev *nostr.Event) {
	s.downloaded.Add(1)
	s.ingests.Add(1)
	s.opt.Local.Ingest(ctx, ev, relay.IngestOptions{Source: wisp.SourceSync, Remote: s.opt.URL}, func(r relay.IngestResult) {
		s.down.Count(r)
		s.ingests.Done()
	})
}

// fetch runs one REQ until EOSE (or CLOSED, or the timeout, which is an
// error) and calls fn with every event received.
func (s *syncer) fetch(ctx context.Context, f nostr.Filter, fn func(ev *nostr.Event)) error {
	id := randomID("sync-")
	sub := s.c.subscribe(id, 1024)
	defer s.c.unsubscribe(id)
	if err := s.c.sendJSON(ctx, "REQ", id, f); err != nil {
		return err
	}
	defer func() { _ = s.c.sendJSON(ctx, "CLOSE", id) }()
	timer := time.NewTimer(s.opt.Timeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.c.done:
			return s.c.closedErr()
		case <-timer.C:
			return fmt.Errorf("%s: no EOSE within %s", s.opt.URL, s.opt.Timeout)
		case m := <-sub:
			switch m.verb {
			case "EOSE":
				return nil
			case "CLOSED":
				return fmt.Errorf("%s closed the subscription: %s", s.opt.URL, m.str(1))
			case "EVENT":
				if len(m.args) < 2 {
					continue
				}
				var ev nostr.Event
				if err := json.Unmarshal(m.args[1], &ev); err != nil {
					continue
				}
				fn(&ev)
				timer.Reset(s.opt.Timeout)
			}
		}
	}
}

// download asks for the events with these ids, in batches, and ingests
// the ones asked for.
func (s *syncer) download(ctx context.Context, ids []string) error {
	for start := 0; start < len(ids); start += s.opt.Batch {
		batch := ids[start:min(start+s.opt.Batch, len(ids))]
		want := make(map[string]bool, len(batch))
		for _, id := range batch {
			want[id] = true
		}
		err := s.fetch(ctx, nostr.Filter{IDs: batch, Limit: len(batch)}, func(ev *nostr.Event) {
			if want[ev.ID] {
				delete(want, ev.ID)
				s.ingest(ctx, ev)
			}
		})
		if err != nil {
			return fmt.Errorf("download: %w", err)
		}
		s.progress(false)
	}
	return nil
}

// upload sends the local events with these ids, at most InFlight
// unanswered at once.
func (s *syncer) upload(ctx context.Context, ids []string) error {
	sem := make(chan struct{}, s.opt.InFlight)
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	fail := func(err error) { firstErr.CompareAndSwap(nil, &err) }
	for start := 0; start < len(ids) && firstErr.Load() == nil; start += 500 {
		batch := ids[start:min(start+500, len(ids))]
		var raws [][]byte
		_, err := s.opt.Store.Query(ctx, []nostr.Filter{{IDs: batch, Limit: len(batch)}}, func(raw []byte) error {
			raws = append(raws, append([]byte(nil), raw...))
			return nil
		})
		if err != nil {
			return fmt.Errorf("upload: read local events: %w", err)
		}
		for _, raw := range raws {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return ctx.Err()
			}
			if firstErr.Load() != nil {
				<-sem
				break
			}
			id := eventID(raw)
			okc, err := s.c.publish(ctx, id, raw)
			if err != nil {
				<-sem
				fail(fmt.Errorf("upload: %w", err))
				break
			}
			wg.Go(func() {
				defer func() { <-sem }()
				select {
				case r := <-okc:
					if r.ok {
						s.uploaded.Add(1)
					} else {
						s.upRejected.Add(1)
						s.log.Debug("remote relay refused an event", "url", s.opt.URL, "id", id, "reason", r.reason)
					}
				case <-time.After(s.opt.Timeout):
					s.c.forget(id)
					fail(fmt.Errorf("upload: %s did not answer event %s within %s", s.opt.URL, id, s.opt.Timeout))
				case <-s.c.done:
					fail(fmt.Errorf("upload: %w", s.c.closedErr()))
				case <-ctx.Done():
					fail(ctx.Err())
				}
			})
			s.progress(false)
		}
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

// eventID reads the id of canonical event JSON ({"id":"<64 hex>",...}).
func eventID(raw []byte) string {
	const pre = `{"id":"`
	if len(raw) >= len(pre)+64 && string(raw[:len(pre)]) == pre {
		return string(raw[len(pre) : len(pre)+64])
	}
	var ev struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &ev)
	return ev.ID
}

// fallback pages through the remote's matching events by until, newest
// first: down ingests each, up learns which ids the remote has and then
// uploads the local events it lacks. The local ids are listed first, so
// that the figures mean what negentropy's do: Local the events here,
// Need those only there, Have those only here.
func (s *syncer) fallback(ctx context.Context) error {
	local := map[[32]byte]struct{}{}
	err := s.opt.Store.ListIDs(ctx, []nostr.Filter{s.opt.Filter}, s.opt.MaxEvents, func(_ int64, id []byte) error {
		local[[32]byte(id)] = struct{}{}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list local events: %w", err)
	}
	s.stats.Local = len(local)
	remote := map[[32]byte]struct{}{}
	var until nostr.Timestamp = math.MaxInt32 * 2
	if s.opt.Filter.Until != nil {
		until = *s.opt.Filter.Until
	}
	for {
		f := s.opt.Filter
		u := until
		f.Until = &u
		f.Limit = s.opt.PageSize
		got, fresh := 0, 0
		oldest := until
		err := s.fetch(ctx, f, func(ev *nostr.Event) {
			got++
			if ev.CreatedAt < oldest {
				oldest = ev.CreatedAt
			}
			var id [32]byte
			if _, err := hex.Decode(id[:], []byte(ev.ID)); err != nil || len(ev.ID) != 64 {
				if s.opt.Dir&Down != 0 {
					s.ingest(ctx, ev) // refused, and counted so
				}
				return
			}
			if _, seen := remote[id]; seen {
				return
			}
			remote[id] = struct{}{}
			fresh++
			if _, here := local[id]; here || !f.Matches(ev) {
				return
			}
			s.stats.Need++
			if s.opt.Dir&Down != 0 {
				s.ingest(ctx, ev)
			}
		})
		if err != nil {
			return fmt.Errorf("page events: %w", err)
		}
		s.progress(false)
		if got == 0 {
			break
		}
		// The next page starts at the oldest second seen, inclusive, so
		// that events sharing it are not lost; when a whole page fell in
		// one second, move past it.
		if oldest < until && fresh > 0 {
			until = oldest
		} else {
			if oldest == 0 {
				break
			}
			until = oldest - 1
		}
		if s.opt.Filter.Since != nil && until < *s.opt.Filter.Since {
			break
		}
	}
	var have []string
	for id := range local {
		if _, ok := remote[id]; !ok {
			have = append(have, hex.EncodeToString(id[:]))
		}
	}
	s.stats.Have = len(have)
	if s.opt.Dir&Up == 0 {
		return nil
	}
	return s.upload(ctx, have)
}

// gatherUnique collects ids from ch until it closes or stop does, keeping
// each once: go-nostr's negentropy may report an id more than once over
// several rounds (seen against strfry with tens of thousands of
// differences), and a repeated id would be downloaded or uploaded again.
func gatherUnique(ch <-chan string, stop <-chan struct{}) []string {
	var out []string
	seen := map[string]struct{}{}
	for {
		select {
		case id, ok := <-ch:
			if !ok {
				return out
			}
			if _, dup := seen[id]; dup {
				continue
			}
			seen[id] = struct{}{}
			out = append(out, id)
		case <-stop:
			return out
		}
	}
}
