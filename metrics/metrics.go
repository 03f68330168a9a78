// Package metrics exposes wisp's figures to Prometheus. Metrics implements
// relay.Metrics with client_golang collectors on a registry of its own (no
// global registry, no package state), adds gauges read at scrape time
// (connections, subscriptions, database size), and serves everything in the
// Prometheus text format, optionally behind a bearer token.
package metrics

import (
	"crypto/subtle"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wisp-relay/wisp/relay"
)

const namespace = "wisp"

// Build describes the running binary, the labels of wisp_build_info.
type Build struct {
	Version  string // wisp's version
	Verifier string // the signature verifier compiled in: btcec or libsecp256k1
	Engine   string // the storage engine: sqlite
}

// Sources are what the gauges read at scrape time; nil ones are left out.
type Sources struct {
	// Build labels wisp_build_info.
	Build Build
	// Stats returns the relay's running figures (connections,
	// subscriptions, slow-consumer evictions).
	Stats func() relay.Stats
	// DBSizes returns the size in bytes of the database file and its WAL.
	DBSizes func() (db, wal int64, err error)
	// StoredEvents returns how many events the database holds; ok false
	// when it cannot tell cheaply.
	StoredEvents func() (n int64, ok bool)
}

// Metrics is the Prometheus side of relay.Metrics.
type Metrics struct {
	reg *prometheus.Registry

	in, out     map[string]prometheus.Counter // by verb, resolved once
	inOther     prometheus.Counter
	outOther    prometheus.Counter
	events      map[[2]string]prometheus.Counter // by outcome and prefix
	eventsVec   *prometheus.CounterVec
	batchEvents prometheus.Histogram
	batchTime   prometheus.Histogram
	batchErrors prometheus.Counter
	queries     *prometheus.HistogramVec
	queryHists  []prometheus.Metric              // every (kind, outcome) of queries, for Totals
	refused     map[[2]string]prometheus.Counter // by what and prefix
	refusedVec  *prometheus.CounterVec
}

var _ relay.Metrics = (*Metrics)(nil)

// New builds the collectors and registers them, with Go runtime and
// process collectors, on a new registry.
func New(src Sources) *Metrics {
	// Label values known in advance, so that the hot path does no label
	// lookup and no client can mint new series.
	inVerbs := []string{"EVENT", "REQ", "CLOSE", "COUNT", "AUTH", "NEG", "invalid"}
	outVerbs := []string{"EVENT", "OK", "EOSE", "CLOSED", "NOTICE", "COUNT", "AUTH", "NEG-MSG", "NEG-ERR"}
	prefixes := []string{"invalid", "duplicate", "blocked", "rate-limited", "restricted", "auth-required", "pow", "error", "other"}

	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg, in: map[string]prometheus.Counter{}, out: map[string]prometheus.Counter{},
		events: map[[2]string]prometheus.Counter{}, refused: map[[2]string]prometheus.Counter{}}

	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels say which wisp runs: its version, signature verifier and storage engine.",
		ConstLabels: prometheus.Labels{"version": src.Build.Version, "verifier": src.Build.Verifier, "engine": src.Build.Engine},
	})
	buildInfo.Set(1)

	msgIn := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "messages_received_total",
		Help: "Messages received from clients, by verb (invalid: could not be parsed).",
	}, []string{"verb"})
	msgOut := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "messages_sent_total",
		Help: "Messages written to clients, by verb.",
	}, []string{"verb"})
	for _, v := range inVerbs {
		m.in[v] = msgIn.WithLabelValues(v)
	}
	for _, v := range outVerbs {
		m.out[v] = msgOut.WithLabelValues(v)
	}
	m.inOther, m.outOther = msgIn.WithLabelValues("other"), msgOut.WithLabelValues("other")

	m.eventsVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "events_total",
		Help: "EVENTs by outcome (stored, ephemeral, duplicate, rejected) and, for rejected ones, the prefix of the reason.",
	}, []string{"outcome", "prefix"})
	for _, o := range []string{relay.OutcomeStored, relay.OutcomeEphemeral, relay.OutcomeDuplicate} {
		m.events[[2]string{o, ""}] = m.eventsVec.WithLabelValues(o, "")
	}
	for _, p := range prefixes {
		m.events[[2]string{relay.OutcomeRejected, p}] = m.eventsVec.WithLabelValues(relay.OutcomeRejected, p)
	}

	m.refusedVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "refused_total",
		Help: "Requests refused or closed by the relay, other than EVENTs (see wisp_events_total): REQ and COUNT answered CLOSED, " +
			"NEG (NIP-77) answered NEG-ERR, new connections refused over HTTP; by the prefix of the reason.",
	}, []string{"what", "prefix"})
	for _, w := range []string{relay.RefusedREQ, relay.RefusedCOUNT, relay.RefusedNeg, relay.RefusedConnection} {
		for _, p := range prefixes {
			if p != "duplicate" {
				m.refused[[2]string{w, p}] = m.refusedVec.WithLabelValues(w, p)
			}
		}
	}

	m.batchEvents = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "write_batch_events",
		Help:    "Events per write transaction.",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000},
	})
	m.batchTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "write_commit_seconds",
		Help:    "Time to save one write batch, commit included.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms to 4 s
	})
	m.batchErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "write_batch_errors_total",
		Help: "Write batches that failed (every event in them was refused with error:).",
	})
	m.queries = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "query_seconds",
		Help:    "Stored queries by kind (req, count) and outcome (ok, timeout, canceled, error).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15), // 0.5 ms to 8 s
	}, []string{"kind", "outcome"})
	for _, k := range []string{relay.QueryReq, relay.QueryCount} {
		for _, o := range []string{relay.QueryOK, relay.QueryTimeout, relay.QueryCanceled, relay.QueryError} {
			m.queryHists = append(m.queryHists, m.queries.WithLabelValues(k, o).(prometheus.Metric))
		}
	}

	reg.MustRegister(buildInfo, m.refusedVec, msgIn, msgOut, m.eventsVec, m.batchEvents, m.batchTime, m.batchErrors, m.queries,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if src.Stats != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: namespace, Name: "connections_open",
				Help: "Open websocket connections.",
			}, func() float64 { return float64(src.Stats().Connections) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: namespace, Name: "subscriptions_open",
				Help: "Open subscriptions (REQs not yet closed).",
			}, func() float64 { return float64(src.Stats().Subscriptions) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: namespace, Name: "slow_consumer_evictions_total",
				Help: "Clients closed for falling behind their outbound byte budget.",
			}, func() float64 { return float64(src.Stats().SlowEvictions) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: namespace, Name: "outbound_queued_bytes",
				Help: "Bytes queued for clients and not yet written to their sockets.",
			}, func() float64 { return float64(src.Stats().QueuedBytes) }),
		)
	}
	if src.DBSizes != nil {
		size := func(wal bool) func() float64 {
			return func() float64 {
				db, w, err := src.DBSizes()
				if err != nil {
					return 0
				}
				if wal {
					return float64(w)
				}
				return float64(db)
			}
		}
		for _, f := range []struct {
			file string
			wal  bool
		}{{"db", false}, {"wal", true}} {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: namespace, Name: "database_bytes",
				Help:        "Size of the database file (file=db) and of its write-ahead log (file=wal).",
				ConstLabels: prometheus.Labels{"file": f.file},
			}, size(f.wal)))
		}
	}
	if src.StoredEvents != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "database_events",
			Help: "Events in the database (-1: unknown).",
		}, func() float64 {
			n, ok := src.StoredEvents()
			if !ok {
				return -1
			}
			return float64(n)
		}))
	}
	return m
}

// Registry is the registry every collector is on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// MessageIn implements relay.Metrics.
func (m *Metrics) MessageIn(verb string) {
	if c, ok := m.in[verb]; ok {
		c.Inc()
		return
	}
	m.inOther.Inc()
}

// MessageOut implements relay.Metrics.
func (m *Metrics) MessageOut(verb string) {
	if c, ok := m.out[verb]; ok {
		c.Inc()
		return
	}
	m.outOther.Inc()
}

// Event implements relay.Metrics.
func (m *Metrics) Event(outcome, prefix string) {
	if c, ok := m.events[[2]string{outcome, prefix}]; ok {
		c.Inc()
		return
	}
	if outcome == relay.OutcomeRejected {
		m.events[[2]string{outcome, "other"}].Inc()
	}
}

// Refused implements relay.Metrics.
func (m *Metrics) Refused(what, prefix string) {
	if c, ok := m.refused[[2]string{what, prefix}]; ok {
		c.Inc()
		return
	}
	if c, ok := m.refused[[2]string{what, "other"}]; ok {
		c.Inc()
	}
}

// WriteBatch implements relay.Metrics.
func (m *Metrics) WriteBatch(events int, took time.Duration, err error) {
	m.batchEvents.Observe(float64(events))
	m.batchTime.Observe(took.Seconds())
	if err != nil {
		m.batchErrors.Inc()
	}
}

// Query implements relay.Metrics.
func (m *Metrics) Query(kind, outcome string, took time.Duration) {
	m.queries.WithLabelValues(kind, outcome).Observe(took.Seconds())
}

// Handler serves the metrics in the Prometheus text format. With a token,
// a request must carry "Authorization: Bearer <token>" or gets 401.
func (m *Metrics) Handler(token string) http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wisp metrics"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
