package metrics

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wisp-relay/wisp/relay"
)

// scrape fetches h and parses it as Prometheus text.
func scrape(t *testing.T, h http.Handler, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("not Prometheus text: %v", err)
	}
	return fams
}

// value returns the value of the series of name whose labels include
// labels (pairs), or -1.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestMetricsText(t *testing.T) {
	stats := relay.Stats{Connections: 3, Subscriptions: 7, SlowEvictions: 2, QueuedBytes: 4096}
	m := New(Sources{
		Build:        Build{Version: "1.2.3", Verifier: "btcec", Engine: "sqlite"},
		Stats:        func() relay.Stats { return stats },
		DBSizes:      func() (int64, int64, error) { return 4096, 1024, nil },
		StoredEvents: func() (int64, bool) { return 42, true },
	})
	h := m.Handler("")
	before := scrape(t, h, "")
	if v := value(before, "wisp_messages_received_total", "verb", "EVENT"); v != 0 {
		t.Errorf("EVENTs received before traffic: %v", v)
	}

	m.MessageIn("EVENT")
	m.MessageIn("EVENT")
	m.MessageIn("bogus")
	m.MessageOut("OK")
	m.Event(relay.OutcomeStored, "")
	m.Event(relay.OutcomeRejected, "invalid")
	m.Event(relay.OutcomeRejected, "made-up")
	m.WriteBatch(12, 3*time.Millisecond, nil)
	m.WriteBatch(1, time.Millisecond, errors.New("disk full"))
	m.Query(relay.QueryReq, relay.QueryOK, 2*time.Millisecond)
	m.Query(relay.QueryCount, relay.QueryTimeout, time.Second)
	m.Refused(relay.RefusedREQ, "blocked")
	m.Refused(relay.RefusedConnection, "rate-limited")
	m.Refused(relay.RefusedNeg, "closed")

	after := scrape(t, h, "")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wisp_messages_received_total", []string{"verb", "EVENT"}, 2},
		{"wisp_messages_received_total", []string{"verb", "other"}, 1},
		{"wisp_messages_sent_total", []string{"verb", "OK"}, 1},
		{"wisp_events_total", []string{"outcome", "stored"}, 1},
		{"wisp_events_total", []string{"outcome", "rejected", "prefix", "invalid"}, 1},
		{"wisp_events_total", []string{"outcome", "rejected", "prefix", "other"}, 1},
		{"wisp_write_batch_events", nil, 2},
		{"wisp_write_commit_seconds", nil, 2},
		{"wisp_write_batch_errors_total", nil, 1},
		{"wisp_query_seconds", []string{"kind", "req", "outcome", "ok"}, 1},
		{"wisp_query_seconds", []string{"kind", "count", "outcome", "timeout"}, 1},
		{"wisp_connections_open", nil, 3},
		{"wisp_subscriptions_open", nil, 7},
		{"wisp_slow_consumer_evictions_total", nil, 2},
		{"wisp_outbound_queued_bytes", nil, 4096},
		{"wisp_database_bytes", []string{"file", "db"}, 4096},
		{"wisp_database_bytes", []string{"file", "wal"}, 1024},
		{"wisp_database_events", nil, 42},
		{"wisp_build_info", []string{"version", "1.2.3", "verifier", "btcec", "engine", "sqlite"}, 1},
		{"wisp_refused_total", []string{"what", "REQ", "prefix", "blocked"}, 1},
		{"wisp_refused_total", []string{"what", "REQ", "prefix", "invalid"}, 0},
		{"wisp_refused_total", []string{"what", "connection", "prefix", "rate-limited"}, 1},
		{"wisp_refused_total", []string{"what", "NEG", "prefix", "other"}, 1},
	} {
		if got := value(after, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := after["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	sum := after["wisp_write_batch_events"].GetMetric()[0].GetHistogram().GetSampleSum()
	if sum != 13 {
		t.Errorf("batch sizes sum %v, want 13", sum)
	}
}

func TestMetricsToken(t *testing.T) {
	m := New(Sources{})
	h := m.Handler("s3cret")
	for _, auth := range []string{"", "Bearer wrong", "s3cret", "Basic s3cret"} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: status %d", auth, rec.Code)
		}
	}
	scrape(t, h, "s3cret")
}

// Two instances do not share state: no global registry.
func TestMetricsIndependent(t *testing.T) {
	a, b := New(Sources{}), New(Sources{})
	a.MessageIn("REQ")
	if v := value(scrape(t, b.Handler(""), ""), "wisp_messages_received_total", "verb", "REQ"); v != 0 {
		t.Errorf("second instance sees %v REQs", v)
	}
}

// Totals read what /metrics serves: the dashboard and Prometheus agree.
func TestTotalsAgreeWithTheScrape(t *testing.T) {
	m := New(Sources{})
	m.Event(relay.OutcomeStored, "")
	m.Event(relay.OutcomeStored, "")
	m.Event(relay.OutcomeEphemeral, "")
	m.Event(relay.OutcomeDuplicate, "")
	m.Event(relay.OutcomeRejected, "blocked")
	m.Event(relay.OutcomeRejected, "nonsense") // counted as other
	m.Refused(relay.RefusedREQ, "rate-limited")
	m.Refused(relay.RefusedConnection, "blocked")
	m.Refused(relay.RefusedConnection, "rate-limited")
	m.Query(relay.QueryReq, relay.QueryOK, 3*time.Millisecond)
	m.Query(relay.QueryCount, relay.QueryTimeout, 2*time.Second)
	m.WriteBatch(1, time.Millisecond, errors.New("disk full"))

	tot := m.Totals()
	if tot.Stored != 2 || tot.Ephemeral != 1 || tot.Duplicate != 1 || tot.Rejected["blocked"] != 1 || tot.Rejected["other"] != 1 {
		t.Errorf("events %+v", tot)
	}
	if tot.Refused[relay.RefusedREQ] != 1 || tot.Refused[relay.RefusedConnection] != 2 || tot.BatchErrors != 1 {
		t.Errorf("refused %v, batch errors %v", tot.Refused, tot.BatchErrors)
	}
	q := tot.Queries
	if q.Count != 2 || q.Sum < 2.003 || q.Sum > 2.0031 || len(q.Bounds) == 0 || len(q.Counts) != len(q.Bounds) {
		t.Fatalf("queries %+v", q)
	}
	fams := scrape(t, m.Handler(""), "")
	if got := value(fams, "wisp_events_total", "outcome", "rejected", "prefix", "blocked"); got != tot.Rejected["blocked"] {
		t.Errorf("scrape says %v rejected blocked, Totals %v", got, tot.Rejected["blocked"])
	}
	// The 3 ms query is at most 4 ms, the 2 s one is not.
	for i, b := range q.Bounds {
		if b >= 0.004 && b < 2 && q.Counts[i] != 1 {
			t.Errorf("bucket %v holds %d, want 1", b, q.Counts[i])
		}
	}
}
