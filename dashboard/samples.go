package dashboard

import (
	"context"
	"sync"
	"time"

	"github.com/wisp-relay/wisp/metrics"
	"github.com/wisp-relay/wisp/relay"
)

const (
	// sampleEvery is the charts' resolution, samplesKept their length:
	// five minutes, a fixed ring whatever happens.
	sampleEvery = time.Second
	samplesKept = 300
	// windowEvery is how often the busiest lists start a new window: they
	// show the last five to ten minutes.
	windowEvery = 5 * time.Minute
)

// Sample is the relay's figures at one moment, and its rates over the
// second before: one point of every chart.
type Sample struct {
	T             int64 `json:"t"` // unix milliseconds
	Connections   int64 `json:"connections"`
	Subscriptions int64 `json:"subscriptions"`
	// Events a second: stored or broadcast (ephemeral), duplicates, and
	// refused ones by the prefix of the reason (only prefixes seen).
	Accepted  float64            `json:"accepted"`
	Duplicate float64            `json:"duplicate"`
	Rejected  map[string]float64 `json:"rejected"`
	// Refused a second, other than EVENTs (wisp_refused_total): REQ,
	// COUNT, NEG and connection (only those seen).
	Refused map[string]float64 `json:"refused"`
	// Stored queries a second, their mean and 95th percentile in ms
	// (estimated from wisp_query_seconds' buckets; 0 without queries).
	Queries    float64 `json:"queries"`
	QueryAvgMs float64 `json:"query_avg_ms"`
	QueryP95Ms float64 `json:"query_p95_ms"`
	// Slow consumers closed a second, and since the start.
	Evictions      float64 `json:"evictions"`
	EvictionsTotal int64   `json:"evictions_total"`
	// Since the start: events stored (ephemeral ones included) and refused.
	AcceptedTotal float64 `json:"accepted_total"`
	RejectedTotal float64 `json:"rejected_total"`
	DBBytes       int64   `json:"db_bytes"`
	WALBytes      int64   `json:"wal_bytes"`
	QueuedBytes   int64   `json:"queued_bytes"` // outbound bytes waiting for clients
}

// reading is what one sample is computed from.
type reading struct {
	at     time.Time
	stats  relay.Stats
	totals metrics.Totals
}

// sampler keeps the last samplesKept samples.
type sampler struct {
	mu    sync.Mutex
	ring  [samplesKept]Sample
	next  int // where the next sample goes
	n     int // samples held
	prev  reading
	began bool
}

// record adds the sample of r, with rates against the previous reading.
func (s *sampler) record(r reading, db, wal int64) {
	smp := Sample{
		T: r.at.UnixMilli(), Connections: r.stats.Connections, Subscriptions: r.stats.Subscriptions,
		EvictionsTotal: r.stats.SlowEvictions, DBBytes: db, WALBytes: wal, QueuedBytes: r.stats.QueuedBytes,
		AcceptedTotal: r.totals.Stored + r.totals.Ephemeral,
		Rejected:      map[string]float64{}, Refused: map[string]float64{},
	}
	for _, v := range r.totals.Rejected {
		smp.RejectedTotal += v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.began {
		p := s.prev
		secs := r.at.Sub(p.at).Seconds()
		if secs <= 0 {
			secs = sampleEvery.Seconds()
		}
		rate := func(now, before float64) float64 { return max(now-before, 0) / secs }
		smp.Accepted = rate(smp.AcceptedTotal, p.totals.Stored+p.totals.Ephemeral)
		smp.Duplicate = rate(r.totals.Duplicate, p.totals.Duplicate)
		for k, v := range r.totals.Rejected {
			if d := rate(v, p.totals.Rejected[k]); d > 0 {
				smp.Rejected[k] = d
			}
		}
		for k, v := range r.totals.Refused {
			if d := rate(v, p.totals.Refused[k]); d > 0 {
				smp.Refused[k] = d
			}
		}
		smp.Evictions = rate(float64(r.stats.SlowEvictions), float64(p.stats.SlowEvictions))
		q, pq := r.totals.Queries, p.totals.Queries
		if n := q.Count - pq.Count; q.Count > pq.Count {
			smp.Queries = float64(n) / secs
			smp.QueryAvgMs = (q.Sum - pq.Sum) / float64(n) * 1000
			smp.QueryP95Ms = quantile(0.95, q, pq) * 1000
		}
	}
	s.prev, s.began = r, true
	s.ring[s.next] = smp
	s.next = (s.next + 1) % samplesKept
	s.n = min(s.n+1, samplesKept)
}

// since returns the samples taken after t (unix ms), oldest first.
func (s *sampler) since(t int64) []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Sample{}
	for i := range s.n {
		smp := s.ring[(s.next-s.n+i+samplesKept)%samplesKept]
		if smp.T > t {
			out = append(out, smp)
		}
	}
	return out
}

// quantile estimates the q-quantile, in seconds, of the observations made
// between two readings of a cumulative histogram, interpolating linearly
// within a bucket as Prometheus's histogram_quantile does; past the last
// bound it answers the last bound.
func quantile(q float64, now, before metrics.Histogram) float64 {
	total := float64(now.Count - before.Count)
	if total <= 0 || len(now.Bounds) == 0 || len(before.Counts) != len(now.Counts) {
		return 0
	}
	want := q * total
	lower, below := 0.0, 0.0
	for i, bound := range now.Bounds {
		in := float64(now.Counts[i] - before.Counts[i])
		if in >= want {
			if in == below {
				return bound
			}
			return lower + (bound-lower)*(want-below)/(in-below)
		}
		lower, below = bound, in
	}
	return now.Bounds[len(now.Bounds)-1]
}

// run samples every sampleEvery and moves the busiest lists' windows on
// every windowEvery, until ctx is done.
func (d *Dashboard) run(ctx context.Context) {
	d.sample(time.Now())
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	window := time.NewTicker(windowEvery)
	defer window.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			d.sample(now)
			d.countKinds(ctx, now)
		case <-window.C:
			d.cfg.Tally.rotate()
		}
	}
}

func (d *Dashboard) sample(now time.Time) {
	r := reading{at: now}
	if d.cfg.Stats != nil {
		r.stats = d.cfg.Stats()
	}
	if d.cfg.Totals != nil {
		r.totals = d.cfg.Totals()
	}
	var db, wal int64
	if d.cfg.DBSizes != nil {
		db, wal, _ = d.cfg.DBSizes()
	}
	d.samples.record(r, db, wal)
}
