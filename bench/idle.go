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

// idleSettle is how long the idle connections are held before the relay's
// memory is read: long enough for the relay to finish setting them up.
const idleSettle = 2 * time.Second

// IdleReport is the idle phase: many connections, each with one open
// subscription, doing nothing.
type IdleReport struct {
	Connections int            `json:"connections"`
	Open        int            `json:"open"` // subscribed: EOSE received
	Failed      map[string]int `json:"failed,omitempty"`
	StillOpen   int            `json:"still_open"` // open after the hold
	OpenSeconds float64        `json:"open_seconds"`
	HoldSeconds float64        `json:"hold_seconds"`
	// With --pid: the relay's resident memory before and with the
	// connections, and the difference per open connection.
	RSSBeforeKiB int64   `json:"relay_rss_before_kib,omitempty"`
	RSSAfterKiB  int64   `json:"relay_rss_after_kib,omitempty"`
	KiBPerConn   float64 `json:"relay_kib_per_conn,omitempty"`
	Cost
}

func (r *runner) idle(ctx context.Context) error {
	cfg := r.cfg
	n := cfg.IdleConns
	rep := &IdleReport{Connections: n}

	// Let the previous phase's connections finish closing on the relay.
	sleep(ctx, time.Second)
	rep.RSSBeforeKiB = r.relayRSS()
	m := r.meter()

	var (
		opened, alive atomic.Int64
		fmu           sync.Mutex
		failed        = map[string]int{}
		readers       sync.WaitGroup
		ready         sync.WaitGroup
	)
	fail := func(why string) {
		fmu.Lock()
		failed[why]++
		fmu.Unlock()
	}
	r.prog.set("idle", func() string {
		return fmt.Sprintf("%d/%d connections subscribed", opened.Load(), n)
	})
	hctx, release := context.WithCancel(ctx)
	defer release()
	slots := make(chan struct{}, dialParallel)
	start := time.Now()
	for j := range n {
		ready.Add(1)
		readers.Go(func() {
			subscribed := sync.OnceFunc(ready.Done)
			defer subscribed()
			select {
			case slots <- struct{}{}:
			case <-hctx.Done():
				return
			}
			ws, why := r.idleSubscribe(hctx, j)
			<-slots
			if ws == nil {
				if hctx.Err() == nil {
					fail(why)
				}
				return
			}
			defer ws.CloseNow() //nolint:errcheck // the phase is over
			opened.Add(1)
			alive.Add(1)
			subscribed()
			// Keep reading, as a client would, until the phase ends; a
			// connection the relay drops stops counting as alive.
			for {
				if _, _, err := ws.Read(hctx); err != nil {
					if hctx.Err() == nil {
						alive.Add(-1)
						fail("dropped while idle")
					}
					return
				}
			}
		})
	}
	ready.Wait()
	rep.OpenSeconds = time.Since(start).Round(time.Millisecond).Seconds()
	rep.Open = int(opened.Load())

	held := time.Now()
	sleep(ctx, idleSettle)
	rep.RSSAfterKiB = r.relayRSS()
	rep.StillOpen = int(alive.Load())
	rep.HoldSeconds = time.Since(held).Round(time.Millisecond).Seconds()
	rep.Cost = m.done("idle")
	if rep.Open > 0 && rep.RSSBeforeKiB > 0 && rep.RSSAfterKiB > 0 {
		rep.KiBPerConn = round1(float64(rep.RSSAfterKiB-rep.RSSBeforeKiB) / float64(rep.Open))
	}
	release()
	readers.Wait()
	fmu.Lock()
	rep.Failed = nonEmpty(failed)
	fmu.Unlock()
	r.rep.Idle = rep
	return nil
}

// idleSubscribe opens idle connection j, on node j, with a subscription to one key's
// profile (one stored event, then EOSE). On failure it returns a reason.
func (r *runner) idleSubscribe(ctx context.Context, j int) (*websocket.Conn, string) {
	ws, err := dial(ctx, r.cfg.nodeURL(j))
	if err != nil {
		return nil, "dial"
	}
	pks := r.corpus.Pubkeys
	req, err := reqMessage("idle", nostr.Filter{Kinds: []int{0}, Authors: []string{pks[j%len(pks)]}})
	if err != nil {
		ws.CloseNow() //nolint:errcheck // failed anyway
		return nil, "encode"
	}
	// A read whose context ends closes the connection; coder/websocket
	// only watches the context during a read, so ending wctx after EOSE
	// leaves the subscription open.
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Wait)
	defer cancel()
	if err := ws.Write(wctx, websocket.MessageText, req); err != nil {
		ws.CloseNow() //nolint:errcheck // failed anyway
		return nil, "subscribe"
	}
	for {
		_, data, err := ws.Read(wctx)
		if err != nil {
			ws.CloseNow() //nolint:errcheck // failed anyway
			if wctx.Err() != nil {
				return nil, "no EOSE"
			}
			return nil, "connection"
		}
		m, err := parseRelayMsg(data)
		if err != nil {
			continue
		}
		switch {
		case m.label == "EOSE" && m.sub == "idle":
			return ws, ""
		case m.label == "CLOSED" && m.sub == "idle":
			ws.CloseNow() //nolint:errcheck // failed anyway
			return nil, "CLOSED " + reasonPrefix(m.reason)
		}
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
