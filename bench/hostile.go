package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// The hostile phase measures what a few connections that never read can
// make a relay hold: each attack opens HostileConns connections with a
// small socket receive buffer (so that what they do not read stays in the
// relay rather than in the kernel), sends its messages, holds the
// connections while it samples the relay's resident memory, closes them
// and samples again while the memory should come back. It needs --pid for
// its figures, and a relay that already holds a corpus (run ingest first,
// or point it at a full relay).
//
// The attacks:
//   - req: one REQ of 10 filters with limit 5000 each, over disjoint
//     authors, so that every filter has its own 5,000 events;
//   - subs: HostileSubs (50) subscriptions of 10 filters of 500 ids each
//     (330 KB of filters a subscription);
//   - neg: 4 negentropy sessions over every event.

const (
	hostileSample = 100 * time.Millisecond // how often the relay's memory is read
	hostileRcvBuf = 4096                   // the attackers' socket receive buffer
)

// HostileReport is the hostile phase: one row per attack.
type HostileReport struct {
	Connections  int             `json:"connections"`
	RSSBeforeKiB int64           `json:"relay_rss_before_kib,omitempty"`
	Attacks      []HostileAttack `json:"attacks"`
	Cost
}

// HostileAttack is what one attack made the relay hold.
type HostileAttack struct {
	Name    string         `json:"name"`
	Opened  int            `json:"opened"`
	Failed  map[string]int `json:"failed,omitempty"`
	Replies map[string]int `json:"replies,omitempty"` // what the relay answered before the hold ended, by verb and prefix
	// With --pid: the relay's resident memory before the attack, the most
	// it reached while the connections were held, and where it was once
	// they had been closed for Config.HostileRelease.
	RSSBeforeKiB int64 `json:"relay_rss_before_kib,omitempty"`
	RSSPeakKiB   int64 `json:"relay_rss_peak_kib,omitempty"`
	RSSAfterKiB  int64 `json:"relay_rss_after_kib,omitempty"`
}

func (r *runner) hostile(ctx context.Context) error {
	rep := &HostileReport{Connections: r.cfg.HostileConns, RSSBeforeKiB: r.relayRSS()}
	m := r.meter()
	pks := r.corpus.Pubkeys
	attacks := []struct {
		name string
		msgs func(conn int) [][]byte
	}{
		{"req", func(int) [][]byte {
			fs := make([]nostr.Filter, 10)
			for i := range fs {
				lo, hi := i*len(pks)/10, (i+1)*len(pks)/10
				fs[i] = nostr.Filter{Authors: pks[lo:hi], Limit: 5000}
			}
			return [][]byte{reqMessages("worst", fs)}
		}},
		{"subs", func(conn int) [][]byte {
			var out [][]byte
			for s := range r.cfg.HostileSubs {
				fs := make([]nostr.Filter, 10)
				for i := range fs {
					fs[i] = nostr.Filter{IDs: fakeIDs(conn*1000+s*10+i, 500)}
				}
				out = append(out, reqMessages(fmt.Sprint("s", s), fs))
			}
			return out
		}},
		{"neg", func(int) [][]byte {
			var out [][]byte
			for s := range 4 {
				msg, _ := json.Marshal([]any{"NEG-OPEN", fmt.Sprint("n", s), map[string]any{}, "61"})
				out = append(out, msg)
			}
			return out
		}},
	}
	for _, a := range attacks {
		rep.Attacks = append(rep.Attacks, r.attack(ctx, a.name, a.msgs))
		if ctx.Err() != nil {
			break
		}
	}
	rep.Cost = m.done("hostile")
	r.rep.Hostile = rep
	return nil
}

// attack runs one attack and measures it.
func (r *runner) attack(ctx context.Context, name string, msgs func(conn int) [][]byte) HostileAttack {
	n := r.cfg.HostileConns
	res := HostileAttack{Name: name, RSSBeforeKiB: r.relayRSS()}
	r.prog.set("hostile", func() string { return name + ": connecting" })
	var (
		mu      sync.Mutex
		failed  = map[string]int{}
		replies = map[string]int{}
		conns   []*websocket.Conn
		wg      sync.WaitGroup
	)
	slots := make(chan struct{}, dialParallel)
	for j := range n {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			ws, err := dialSlowReader(ctx, r.cfg.nodeURL(j))
			if err != nil {
				why := "dial"
				if strings.Contains(err.Error(), "HTTP 429") {
					why = "dial refused (HTTP 429)"
				}
				mu.Lock()
				failed[why]++
				mu.Unlock()
				return
			}
			wctx, cancel := context.WithTimeout(ctx, r.cfg.Wait)
			defer cancel()
			for _, m := range msgs(j) {
				if err := ws.Write(wctx, websocket.MessageText, m); err != nil {
					mu.Lock()
					failed["write"]++
					mu.Unlock()
					break
				}
			}
			mu.Lock()
			conns = append(conns, ws)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Opened = len(conns)

	// Hold, sampling the relay's memory.
	r.prog.set("hostile", func() string { return fmt.Sprintf("%s: holding %d connections", name, len(conns)) })
	res.RSSPeakKiB = r.peakRSS(ctx, r.cfg.HostileHold)

	// What the relay answered, read only now: a few frames each, enough to
	// see whether it refused (CLOSED, NEG-ERR, NOTICE) or served.
	for _, ws := range conns {
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		for range 3 {
			_, data, err := ws.Read(rctx)
			if err != nil {
				break
			}
			if m, err := parseRelayMsg(data); err == nil {
				key := m.label
				if m.reason != "" {
					key += " " + reasonPrefix(m.reason)
				}
				replies[key]++
			}
		}
		cancel()
		ws.CloseNow() //nolint:errcheck // the attack is over
	}
	r.prog.set("hostile", func() string { return name + ": watching the memory come back" })
	sleep(ctx, r.cfg.HostileRelease)
	res.RSSAfterKiB = r.relayRSS()
	res.Failed, res.Replies = nonEmpty(failed), nonEmpty(replies)
	return res
}

// peakRSS samples the relay's resident memory for d and returns the most.
func (r *runner) peakRSS(ctx context.Context, d time.Duration) int64 {
	var peak int64
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		peak = max(peak, r.relayRSS())
		sleep(ctx, hostileSample)
	}
	return peak
}

// dialSlowReader dials with a small socket receive buffer and never reads
// unless asked: what the relay sends stays queued on its side.
func dialSlowReader(ctx context.Context, url string) (*websocket.Conn, error) {
	d := &net.Dialer{}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(hostileRcvBuf)
		}
		return c, err
	}}}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, dialError(url, resp, err)
	}
	ws.SetReadLimit(readLimit)
	return ws, nil
}

// reqMessages is ["REQ",<sub>,<filter>...].
func reqMessages(sub string, fs []nostr.Filter) []byte {
	args := []any{"REQ", sub}
	for i := range fs {
		args = append(args, fs[i])
	}
	b, _ := json.Marshal(args) // filters and strings always marshal
	return b
}

// fakeIDs are n distinct 64-hex ids derived from seed.
func fakeIDs(seed, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%016x%048x", seed, i)
	}
	return out
}
