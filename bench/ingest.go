package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// SendReport is the outcome of publishing events and waiting for their OKs.
type SendReport struct {
	Sent      int            `json:"sent"`
	OKTrue    int            `json:"ok_true"`   // every OK true, duplicates included
	Duplicate int            `json:"duplicate"` // OK true with "duplicate:"
	OKFalse   map[string]int `json:"ok_false,omitempty"`
	// OKFalseExamples is the first message of each OK false prefix.
	OKFalseExamples map[string]string `json:"ok_false_examples,omitempty"`
	Timeouts        int               `json:"timeouts"` // sent, never answered in time
	Unsent          int               `json:"unsent"`   // not sent: the phase ran out of time or connections
	ConnErrors      map[string]int    `json:"connection_errors,omitempty"`
	Seconds         float64           `json:"seconds"` // first send to last OK
	// PerSecond is new events stored per second for ingest, answers per
	// second for duplicates.
	PerSecond float64 `json:"per_second"`
	OK        Latency `json:"ok_latency"`
	Cost
}

// IngestReport is the ingest phase: the corpus, then duplicates.
type IngestReport struct {
	Connections int `json:"connections"`
	InFlight    int `json:"in_flight"`
	SendReport
	Accepted int `json:"accepted"` // new events stored: OK true, not duplicate
	// Relay cost per accepted event, with --pid.
	CPUMicrosPerEvent float64     `json:"relay_cpu_us_per_event,omitempty"`
	DiskBytesPerEvent float64     `json:"relay_disk_bytes_per_event,omitempty"`
	Duplicates        *SendReport `json:"duplicates,omitempty"`
}

// outcome is what became of one sent event.
type outcome uint8

const (
	unsent outcome = iota
	okNew
	okDuplicate
	okFalse
	noAnswer
)

// sendItem is one event to publish.
type sendItem struct {
	id  string
	msg []byte
}

// sendResult is the raw outcome of sendAll.
type sendResult struct {
	outcomes   []outcome // by item
	lat        []time.Duration
	falseBy    map[string]int
	falseEx    map[string]string
	connErrs   map[string]int
	start, end time.Time
}

// sendState is sendAll's shared bookkeeping.
type sendState struct {
	items    []sendItem
	outcomes []outcome // each index written by whoever resolves it, once
	next     atomic.Int64
	sent     atomic.Int64
	answered atomic.Int64
	lastOK   atomic.Int64 // UnixNano of the latest OK

	mu       sync.Mutex
	lat      []time.Duration
	falseBy  map[string]int
	falseEx  map[string]string
	connErrs map[string]int
}

func (s *sendState) connError(err error) {
	s.mu.Lock()
	s.connErrs[err.Error()]++
	s.mu.Unlock()
}

// sendAll publishes items over conns connections, each keeping up to
// inFlight EVENTs waiting for their OK, and waits for every answer (at most
// wait per event). It stops sending when ctx is done.
func (r *runner) sendAll(ctx context.Context, name string, items []sendItem, conns, inFlight int) *sendResult {
	s := &sendState{
		items:    items,
		outcomes: make([]outcome, len(items)),
		lat:      make([]time.Duration, 0, len(items)),
		falseBy:  map[string]int{},
		falseEx:  map[string]string{},
		connErrs: map[string]int{},
	}
	r.prog.set(name, func() string {
		return fmt.Sprintf("%d/%d sent, %d answered", s.sent.Load(), len(items), s.answered.Load())
	})
	start := time.Now()
	var wg sync.WaitGroup
	for k := range conns {
		wg.Go(func() { r.sendConn(ctx, s, inFlight, r.cfg.nodeURL(k)) })
	}
	wg.Wait()
	end := start
	if t := s.lastOK.Load(); t != 0 {
		end = time.Unix(0, t)
	}
	return &sendResult{
		outcomes: s.outcomes, lat: s.lat, falseBy: s.falseBy, falseEx: s.falseEx, connErrs: s.connErrs,
		start: start, end: end,
	}
}

// waiting is an event sent on one connection and not yet answered.
type waiting struct {
	item int
	at   time.Time
}

// sendConn is one publishing connection to url: this goroutine writes, one
// reads OKs, one expires events the relay never answers.
func (r *runner) sendConn(ctx context.Context, s *sendState, inFlight int, url string) {
	ws, err := dial(ctx, url)
	if err != nil {
		if ctx.Err() == nil {
			s.connError(err)
		}
		return
	}
	defer ws.CloseNow() //nolint:errcheck // the phase is over for it
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu      sync.Mutex
		pending = map[string]waiting{}
		slots   = make(chan struct{}, inFlight)
	)
	// resolve records the answer to id, once; it reports whether id was
	// still waiting.
	resolve := func(id string, o outcome, now time.Time, reason string) bool {
		mu.Lock()
		w, ok := pending[id]
		delete(pending, id)
		mu.Unlock()
		if !ok {
			return false // late: already expired
		}
		s.outcomes[w.item] = o
		if o != noAnswer {
			s.answered.Add(1)
			s.mu.Lock()
			s.lat = append(s.lat, now.Sub(w.at))
			if o == okFalse {
				p := reasonPrefix(reason)
				s.falseBy[p]++
				if _, seen := s.falseEx[p]; !seen {
					s.falseEx[p] = reason
				}
			}
			s.mu.Unlock()
			for {
				last := s.lastOK.Load()
				if now.UnixNano() <= last || s.lastOK.CompareAndSwap(last, now.UnixNano()) {
					break
				}
			}
		}
		<-slots
		return true
	}

	var helpers sync.WaitGroup
	defer helpers.Wait() // after cancel, which the deferred calls run first
	defer cancel()
	helpers.Go(func() {
		for {
			_, data, err := ws.Read(cctx)
			if err != nil {
				if cctx.Err() == nil {
					s.connError(fmt.Errorf("read: %w", err))
				}
				cancel()
				return
			}
			now := time.Now()
			m, err := parseRelayMsg(data)
			if err != nil {
				s.connError(err)
				continue
			}
			if m.label != "OK" {
				continue // NOTICEs and the like do not answer an EVENT
			}
			o := okNew
			switch {
			case !m.ok:
				o = okFalse
			case reasonPrefix(m.reason) == "duplicate":
				o = okDuplicate
			}
			resolve(m.id, o, now, m.reason)
		}
	})
	helpers.Go(func() {
		t := time.NewTicker(r.cfg.Wait / 20)
		defer t.Stop()
		for {
			select {
			case <-cctx.Done():
				return
			case now := <-t.C:
				var late []string
				mu.Lock()
				for id, w := range pending {
					if now.Sub(w.at) > r.cfg.Wait {
						late = append(late, id)
					}
				}
				mu.Unlock()
				for _, id := range late {
					resolve(id, noAnswer, now, "")
				}
			}
		}
	})

	for {
		select {
		case slots <- struct{}{}:
		case <-cctx.Done():
			r.expireAll(s, &mu, pending)
			return
		}
		i := int(s.next.Add(1) - 1)
		if i >= len(s.items) {
			<-slots
			break
		}
		it := s.items[i]
		mu.Lock()
		pending[it.id] = waiting{item: i, at: time.Now()}
		mu.Unlock()
		if err := ws.Write(cctx, websocket.MessageText, it.msg); err != nil {
			if cctx.Err() == nil {
				s.connError(fmt.Errorf("write: %w", err))
			}
			mu.Lock()
			delete(pending, it.id) // never sent: stays unsent
			mu.Unlock()
			cancel()
			r.expireAll(s, &mu, pending)
			return
		}
		s.sent.Add(1)
	}
	// Everything is sent; wait for the answers (the expirer bounds this).
	for {
		mu.Lock()
		n := len(pending)
		mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-cctx.Done():
			r.expireAll(s, &mu, pending)
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// expireAll gives up on every event still waiting on a connection that is
// ending.
func (r *runner) expireAll(s *sendState, mu *sync.Mutex, pending map[string]waiting) {
	mu.Lock()
	defer mu.Unlock()
	for id, w := range pending {
		s.outcomes[w.item] = noAnswer
		delete(pending, id)
	}
}

// report turns a sendResult into figures; rate is what PerSecond counts.
func (res *sendResult) report(countNew bool) SendReport {
	rep := SendReport{
		OKFalse:         nonEmpty(res.falseBy),
		OKFalseExamples: nonEmptyStr(res.falseEx),
		ConnErrors:      nonEmpty(res.connErrs),
	}
	for _, o := range res.outcomes {
		switch o {
		case unsent:
			rep.Unsent++
		case okNew:
			rep.OKTrue++
		case okDuplicate:
			rep.OKTrue++
			rep.Duplicate++
		case noAnswer:
			rep.Timeouts++
		}
	}
	rep.Sent = len(res.outcomes) - rep.Unsent
	d := res.end.Sub(res.start)
	rep.Seconds = d.Round(time.Millisecond).Seconds()
	if countNew {
		rep.PerSecond = perSecond(rep.OKTrue-rep.Duplicate, d)
	} else {
		rep.PerSecond = perSecond(len(res.lat), d)
	}
	rep.OK = summarize(res.lat)
	return rep
}

func nonEmpty(m map[string]int) map[string]int {
	if len(m) == 0 {
		return nil
	}
	return m
}

func nonEmptyStr(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// ingest publishes the whole corpus, then re-sends some of it to time
// duplicates.
func (r *runner) ingest(ctx context.Context) error {
	c := r.corpus
	items := make([]sendItem, len(c.Events))
	for i, ev := range c.Events {
		items[i] = sendItem{id: ev.ID, msg: c.msgs[i]}
	}
	m := r.meter()
	res := r.sendAll(ctx, "ingest", items, r.cfg.Conns, r.cfg.InFlight)
	rep := &IngestReport{
		Connections: r.cfg.Conns,
		InFlight:    r.cfg.InFlight,
		SendReport:  res.report(true),
	}
	rep.Cost = m.done("ingest")
	rep.Accepted = rep.OKTrue - rep.Duplicate
	if u := rep.Relay; u != nil && rep.Accepted > 0 {
		rep.CPUMicrosPerEvent = round1(u.CPUSeconds * 1e6 / float64(rep.Accepted))
		rep.DiskBytesPerEvent = round1(float64(u.DiskWriteBytes) / float64(rep.Accepted))
	}
	if rep.Duplicate > 0 {
		r.warn("the relay already held %d corpus events: the ingest rate counts only new ones; use an empty relay for clean figures", rep.Duplicate)
	}
	r.rep.Ingest = rep

	// What the relay should now hold, for the query check. An event never
	// answered may or may not be stored.
	stored, unknown := make([]bool, len(items)), make([]bool, len(items))
	var kept []int
	for i, o := range res.outcomes {
		stored[i] = o == okNew || o == okDuplicate
		unknown[i] = o == noAnswer
		if stored[i] {
			kept = append(kept, i)
		}
	}
	r.mu.Lock()
	r.stored, r.unknown = stored, unknown
	r.mu.Unlock()

	if r.cfg.Duplicates == 0 || len(kept) == 0 || ctx.Err() != nil {
		return nil
	}
	// Evenly spread over the corpus, so duplicates are not all recent.
	n := min(r.cfg.Duplicates, len(kept))
	dups := make([]sendItem, n)
	for j := range dups {
		dups[j] = items[kept[j*len(kept)/n]]
	}
	m = r.meter()
	dres := r.sendAll(ctx, "duplicates", dups, r.cfg.Conns, r.cfg.InFlight)
	drep := dres.report(false)
	drep.Cost = m.done("duplicates")
	rep.Duplicates = &drep
	return nil
}

func round1(v float64) float64 {
	return float64(int64(v*10+0.5)) / 10
}
