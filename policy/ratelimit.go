package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Rate is a token bucket: at most N at once (the burst), refilled steadily
// at N per Per. The zero Rate is no limit.
type Rate struct {
	N   int
	Per time.Duration
}

// Unlimited reports whether r sets no limit.
func (r Rate) Unlimited() bool { return r.N <= 0 || r.Per <= 0 }

func (r Rate) String() string {
	if r.Unlimited() {
		return ""
	}
	return strconv.Itoa(r.N) + "/" + r.Per.String()
}

// ParseRate reads "N/period" (such as "20/1m" or "5/1s"; "N/s", "N/m" and
// "N/h" are short for one second, minute and hour). "" and "0" are no limit.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, errors.New("want N/period, such as 20/1m")
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count < 0 {
		return Rate{}, fmt.Errorf("count %q is not a whole number", n)
	}
	per = strings.TrimSpace(per)
	switch per {
	case "s":
		per = "1s"
	case "m":
		per = "1m"
	case "h":
		per = "1h"
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("period %q is not a positive duration", per)
	}
	if count == 0 {
		return Rate{}, nil
	}
	return Rate{N: count, Per: d}, nil
}

// limiter keeps one token bucket per key (an IP address or a pubkey).
// Buckets that have refilled are forgotten, so memory follows the keys
// active within one period.
type limiter struct {
	rate Rate

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(r Rate) *limiter {
	if r.Unlimited() {
		return nil
	}
	return &limiter{rate: r, buckets: map[string]*bucket{}}
}

// allow takes one token for key, reporting false when none is left. A nil
// limiter allows everything.
func (l *limiter) allow(key string, now time.Time) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > l.rate.Per {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: float64(l.rate.N), last: now}
		l.buckets[key] = b
	}
	b.tokens = l.refill(b, now)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *limiter) refill(b *bucket, now time.Time) float64 {
	elapsed := now.Sub(b.last)
	if elapsed <= 0 {
		return b.tokens
	}
	t := b.tokens + float64(l.rate.N)*elapsed.Seconds()/l.rate.Per.Seconds()
	return min(t, float64(l.rate.N))
}

// sweep forgets full buckets: they behave as new ones would.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if l.refill(b, now) >= float64(l.rate.N) {
			delete(l.buckets, k)
		}
	}
	l.lastSweep = now
}

// counter caps concurrent things per key (connections per IP). Its cap
// may change (a reload); what is held is still counted.
type counter struct {
	max atomic.Int64 // 0: no cap
	mu  sync.Mutex
	n   map[string]int
}

func newCounter(limit int) *counter {
	c := &counter{n: map[string]int{}}
	c.setMax(limit)
	return c
}

// setMax changes the cap (0 or less: none). Held slots stay held; a key
// over a lowered cap gets no new one until it is back under it.
func (c *counter) setMax(limit int) { c.max.Store(int64(max(limit, 0))) }

// acquire takes a slot for key; release gives it back. max is the cap it
// was checked against.
func (c *counter) acquire(key string) (release func(), limit int, ok bool) {
	limit = int(c.max.Load())
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit > 0 && c.n[key] >= limit {
		return nil, limit, false
	}
	c.n[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.n[key]--; c.n[key] <= 0 {
				delete(c.n, key)
			}
		})
	}, limit, true
}
