package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// fanoutTag marks the fan-out phase's events; no corpus event carries it.
const fanoutTag = "wisp-bench-fanout"

// dialParallel bounds concurrent handshakes, so that opening thousands of
// connections measures the relay, not a SYN flood against its backlog.
const dialParallel = 32

// FanoutReport is the fan-out phase: live delivery to many subscribers.
type FanoutReport struct {
	Subscribers int `json:"subscribers"`
	Subscribed  int `json:"subscribed"` // REQs answered with EOSE
	// SubscribeFailed counts subscribers that never got EOSE, by reason.
	SubscribeFailed map[string]int `json:"subscribe_failed,omitempty"`
	Events          int            `json:"events"`   // published
	Accepted        int            `json:"accepted"` // OK true
	OKFalse         map[string]int `json:"ok_false,omitempty"`
	Timeouts        int            `json:"timeouts"`        // published, never answered
	RatePerSecond   float64        `json:"rate_per_second"` // publishing rate asked for
	Expected        int            `json:"expected"`        // subscribers × accepted
	Delivered       int            `json:"delivered"`       // distinct (subscriber, event) pairs
	Repeated        int            `json:"repeated"`        // an event sent twice to one subscriber
	Unexpected      int            `json:"unexpected"`      // events of another origin on the subscription
	Seconds         float64        `json:"seconds"`         // first publish to last delivery
	Latency         Latency        `json:"delivery_latency"`
	// Missing is expected less delivered: pairs never delivered, those of
	// subscribers that never subscribed included.
	Missing int `json:"missing"`
	// Nodes is how many URLs of the relay the phase used; with more than
	// one, CrossNode is what crossed from one node to another.
	Nodes     int              `json:"nodes,omitempty"`
	CrossNode *CrossNodeReport `json:"cross_node,omitempty"`
	Cost
}

// CrossNodeReport is the fan-out of a relay of several nodes, counting only
// the deliveries from an event published on one node to a subscriber on
// another: subscribers are spread over the nodes, and event i is published
// on node i (in turn), so every event has subscribers on every other node.
type CrossNodeReport struct {
	Expected  int `json:"expected"`  // (subscriber, accepted event) pairs on different nodes
	Delivered int `json:"delivered"` // distinct such pairs delivered
	Missing   int `json:"missing"`   // expected less delivered
	// Doubled counts an event delivered again to a subscription that
	// already had it (the same event id twice on one REQ).
	Doubled int     `json:"doubled"`
	Latency Latency `json:"delivery_latency"` // publish to receipt on the other node
}

// fanoutFilter is subscriber j's filter. All four shapes match every
// fan-out event, through different fields, so a relay's index of live
// subscriptions is exercised on authors, tags and kinds alike.
func fanoutFilter(j int, author, target string, since nostr.Timestamp) nostr.Filter {
	f := nostr.Filter{Since: &since}
	switch j % 4 {
	case 0:
		f.Kinds = []int{1}
	case 1:
		f.Authors = []string{author}
	case 2:
		f.Tags = nostr.TagMap{"t": {fanoutTag}}
	default:
		f.Tags = nostr.TagMap{"p": {target}}
	}
	return f
}

// fanoutEvents signs n new kind 1 events by the run's publisher key, all
// matching every subscriber's filter.
func (r *runner) fanoutEvents(ctx context.Context, n int, at nostr.Timestamp) ([]*nostr.Event, string, error) {
	sk := secretKey(r.cfg.Corpus.Seed, "fanout", 0)
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		return nil, "", fmt.Errorf("derive publisher key: %w", err)
	}
	target := r.corpus.Pubkeys[0]
	evs := make([]*nostr.Event, n)
	for i := range evs {
		evs[i] = &nostr.Event{
			CreatedAt: at,
			Kind:      1,
			Tags:      nostr.Tags{{"t", fanoutTag}, {"p", target}},
			Content:   fmt.Sprintf("wisp bench fan-out event %d of %d at %d", i+1, n, at),
		}
	}
	if err := signAll(ctx, evs, func(int) string { return sk }); err != nil {
		return nil, "", fmt.Errorf("sign fan-out events: %w", err)
	}
	return evs, pk, nil
}

// fanoutSub is one subscriber's view of the phase.
type fanoutSub struct {
	eose chan struct{} // closed once subscribed or failed
	node int           // the node it is subscribed on

	mu                   sync.Mutex
	seen                 []bool // by event
	lat                  []time.Duration
	crossLat             []time.Duration // deliveries of events published on another node
	repeated, unexpected int
	crossRepeated        int
	lastDelivery         time.Time
	subscribed           bool
	failure              string
}

func (r *runner) fanout(ctx context.Context) error {
	cfg := r.cfg
	at := nostr.Now()
	evs, author, err := r.fanoutEvents(ctx, cfg.FanoutN, at)
	if err != nil {
		return err
	}
	index := make(map[string]int, len(evs))
	msgs := make([][]byte, len(evs))
	for i, ev := range evs {
		index[ev.ID] = i
		if msgs[i], err = eventMessage(ev); err != nil {
			return err
		}
	}
	sendAt := make([]atomic.Int64, len(evs)) // UnixNano of each EVENT's send
	nodes := cfg.urls()
	// Event i is published on node i, subscriber j listens on node j (both
	// in turn): with several nodes, every event crosses to the others.
	pubNode := func(i int) int { return i % len(nodes) }

	rep := &FanoutReport{Subscribers: cfg.FanoutSubs, RatePerSecond: cfg.FanoutRate}
	if len(nodes) > 1 {
		rep.Nodes = len(nodes)
	}
	var delivered atomic.Int64
	r.prog.set("fanout", func() string {
		return fmt.Sprintf("%d deliveries of %d×%d", delivered.Load(), cfg.FanoutSubs, len(evs))
	})

	m := r.meter()
	sctx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	subs := make([]*fanoutSub, cfg.FanoutSubs)
	var readers sync.WaitGroup
	dialSlots := make(chan struct{}, dialParallel)
	for j := range subs {
		s := &fanoutSub{seen: make([]bool, len(evs)), eose: make(chan struct{}), node: j % len(nodes)}
		subs[j] = s
		readers.Go(func() {
			select {
			case dialSlots <- struct{}{}:
			case <-sctx.Done():
				s.fail("phase ended")
				return
			}
			ws, err := dial(sctx, nodes[s.node])
			<-dialSlots
			if err != nil {
				s.fail("dial")
				return
			}
			defer ws.CloseNow() //nolint:errcheck // the phase is over
			req, err := reqMessage("f", fanoutFilter(j, author, r.corpus.Pubkeys[0], at))
			if err == nil {
				err = ws.Write(sctx, websocket.MessageText, req)
			}
			if err != nil {
				s.fail("subscribe")
				return
			}
			r.fanoutRead(sctx, ws, s, index, sendAt, pubNode, &delivered)
		})
	}
	// Wait for every subscription to be live (or to have failed).
	subscribed := 0
	for _, s := range subs {
		select {
		case <-s.eose:
		case <-ctx.Done():
			stopSubs()
			readers.Wait()
			return nil
		}
		s.mu.Lock()
		if s.subscribed {
			subscribed++
		}
		s.mu.Unlock()
	}

	// Publish at a steady rate, on one connection per node, the events in
	// turn; OKs are read alongside.
	pubs := make([]*websocket.Conn, len(nodes))
	for k, u := range nodes {
		pub, err := dial(ctx, u)
		if err != nil {
			stopSubs()
			readers.Wait()
			return err
		}
		defer pub.CloseNow() //nolint:errcheck // the phase is over
		pubs[k] = pub
	}
	var (
		okMu     sync.Mutex
		answered = make([]bool, len(evs))
		okTrue   = make([]bool, len(evs))
		accepted atomic.Int64
		nAnswers atomic.Int64
		okFalse  = map[string]int{}
	)
	pctx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	var pubReader sync.WaitGroup
	for _, pub := range pubs {
		pubReader.Go(func() {
			for {
				_, data, err := pub.Read(pctx)
				if err != nil {
					return
				}
				m, err := parseRelayMsg(data)
				if err != nil || m.label != "OK" {
					continue
				}
				i, known := index[m.id]
				okMu.Lock()
				if known && !answered[i] {
					answered[i] = true
					nAnswers.Add(1)
					if m.ok {
						okTrue[i] = true
						accepted.Add(1)
					} else {
						okFalse[reasonPrefix(m.reason)]++
					}
				}
				okMu.Unlock()
			}
		})
	}

	interval := time.Duration(float64(time.Second) / cfg.FanoutRate)
	start := time.Now()
	sent := 0
	for i, msg := range msgs {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		sendAt[i].Store(time.Now().UnixNano())
		if err := pubs[pubNode(i)].Write(ctx, websocket.MessageText, msg); err != nil {
			r.warn("fanout: publish: %v", err)
			break
		}
		sent++
	}
	lastSend := time.Now()

	// Wait for the answers and the deliveries, at most cfg.Wait after the
	// last publish.
	for time.Since(lastSend) < cfg.Wait && ctx.Err() == nil {
		if nAnswers.Load() == int64(sent) && delivered.Load() >= int64(subscribed)*accepted.Load() {
			break
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	stopPub()
	pubReader.Wait()
	stopSubs()
	readers.Wait()
	rep.Cost = m.done("fanout")

	rep.Events = sent
	rep.Accepted = int(accepted.Load())
	rep.Timeouts = sent - int(nAnswers.Load())
	rep.OKFalse = nonEmpty(okFalse)
	rep.Expected = cfg.FanoutSubs * rep.Accepted
	rep.Subscribed = subscribed
	failed := map[string]int{}
	var lat, crossLat []time.Duration
	var cross CrossNodeReport
	last := start
	okMu.Lock()
	for _, s := range subs {
		s.mu.Lock()
		if !s.subscribed {
			failed[s.failure]++
		}
		lat = append(lat, s.lat...)
		crossLat = append(crossLat, s.crossLat...)
		rep.Delivered += len(s.lat)
		rep.Repeated += s.repeated
		rep.Unexpected += s.unexpected
		cross.Delivered += len(s.crossLat)
		cross.Doubled += s.crossRepeated
		for i, ok := range okTrue {
			if ok && pubNode(i) != s.node {
				cross.Expected++
			}
		}
		if s.lastDelivery.After(last) {
			last = s.lastDelivery
		}
		s.mu.Unlock()
	}
	okMu.Unlock()
	rep.SubscribeFailed = nonEmpty(failed)
	rep.Seconds = last.Sub(start).Round(time.Millisecond).Seconds()
	rep.Latency = summarize(lat)
	rep.Missing = rep.Expected - rep.Delivered
	if len(nodes) > 1 {
		cross.Missing = cross.Expected - cross.Delivered
		cross.Latency = summarize(crossLat)
		rep.CrossNode = &cross
	}
	r.rep.Fanout = rep
	return nil
}

// fail records why the subscriber never subscribed; before its reader runs.
func (s *fanoutSub) fail(why string) {
	s.mu.Lock()
	s.failure = why
	s.mu.Unlock()
	close(s.eose)
}

// fanoutRead is one subscriber's reader: it waits for EOSE, then timestamps
// every delivery until the phase ends.
func (r *runner) fanoutRead(ctx context.Context, ws *websocket.Conn, s *fanoutSub, index map[string]int, sendAt []atomic.Int64, pubNode func(int) int, delivered *atomic.Int64) {
	eoseOnce := sync.OnceFunc(func() { close(s.eose) })
	defer eoseOnce()
	// Without EOSE within the wait, the subscriber counts as failed.
	timer := time.AfterFunc(r.cfg.Wait, func() {
		s.mu.Lock()
		if !s.subscribed && s.failure == "" {
			s.failure = "no EOSE"
		}
		s.mu.Unlock()
		eoseOnce()
	})
	defer timer.Stop()
	// Reads take a context that is never done, so that coder/websocket
	// arms no timer per message (a tenth of the tool's CPU); the phase's
	// end closes the socket instead.
	stop := context.AfterFunc(ctx, func() { ws.CloseNow() }) //nolint:errcheck // the phase is over
	defer stop()
	rctx := context.WithoutCancel(ctx)
	var buf []byte
	for {
		data, err := readInto(rctx, ws, buf[:0])
		buf = data
		if err != nil {
			s.mu.Lock()
			if !s.subscribed && s.failure == "" {
				s.failure = "connection"
			}
			s.mu.Unlock()
			return
		}
		now := time.Now()
		if sub, id, ok := eventID(data); ok {
			if string(sub) == "f" {
				i, known := index[string(id)]
				s.deliver(i, known, now, sendAt, pubNode, delivered)
			}
			continue
		}
		m, err := parseRelayMsg(data)
		if err != nil {
			continue
		}
		switch m.label {
		case "EOSE":
			if m.sub == "f" {
				s.mu.Lock()
				if s.failure == "" {
					s.subscribed = true
				}
				s.mu.Unlock()
				eoseOnce()
			}
		case "CLOSED":
			s.mu.Lock()
			if !s.subscribed && s.failure == "" {
				s.failure = "CLOSED " + reasonPrefix(m.reason)
			}
			s.mu.Unlock()
			eoseOnce()
		case "EVENT": // one eventID leaves to the decoder: escapes in its ids
			if m.sub == "f" {
				i, known := index[m.event.ID]
				s.deliver(i, known, now, sendAt, pubNode, delivered)
			}
		}
	}
}

// deliver records the delivery of event i (known false: an event the
// phase did not publish) at now.
func (s *fanoutSub) deliver(i int, known bool, now time.Time, sendAt []atomic.Int64, pubNode func(int) int, delivered *atomic.Int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !known:
		s.unexpected++
	case s.seen[i]:
		s.repeated++
		if pubNode(i) != s.node {
			s.crossRepeated++
		}
	default:
		s.seen[i] = true
		d := now.Sub(time.Unix(0, sendAt[i].Load()))
		s.lat = append(s.lat, d)
		if pubNode(i) != s.node {
			s.crossLat = append(s.crossLat, d)
		}
		s.lastDelivery = now
		delivered.Add(1)
	}
}
