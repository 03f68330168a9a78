package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/wisp-relay/wisp/metrics"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage"
)

// Search, metrics, retention and slow-query settings (WISP_SEARCH_KINDS,
// WISP_METRICS_TOKEN, WISP_RETENTION, WISP_SLOW_QUERY) and their wiring.

// validateFeatures checks the settings of this file.
func (c Config) validateFeatures() []error {
	var errs []error
	if _, err := parseSearchKinds(c.SearchKinds); err != nil {
		errs = append(errs, fmt.Errorf("%sSEARCH_KINDS=%q: %w", envPrefix, c.SearchKinds, err))
	}
	if _, err := parseRetention(c.Retention); err != nil {
		errs = append(errs, fmt.Errorf("%sRETENTION=%q: %w", envPrefix, c.Retention, err))
	}
	if c.SlowQuery < 0 {
		errs = append(errs, fmt.Errorf("%sSLOW_QUERY=%q: must not be negative", envPrefix, c.SlowQuery))
	}
	if strings.ContainsAny(c.MetricsToken, " \t\r\n") {
		errs = append(errs, fmt.Errorf("%sMETRICS_TOKEN: must not contain spaces", envPrefix))
	}
	if c.MetricsListen != "" {
		if err := checkListen(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("%sMETRICS_LISTEN=%q: want host:port: %w", envPrefix, c.MetricsListen, err))
		}
	}
	return errs
}

// searchKinds is WISP_SEARCH_KINDS parsed; validate has checked it.
func (c Config) searchKinds() []int {
	kinds, _ := parseSearchKinds(c.SearchKinds)
	return kinds
}

// parseSearchKinds reads comma-separated kinds; "none" turns search off
// (an empty variable keeps the default, as every variable does).
func parseSearchKinds(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "none") {
		return []int{}, nil
	}
	kinds := []int{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		k, err := strconv.Atoi(part)
		if err != nil || k < 0 || k > 65535 {
			return nil, fmt.Errorf("want kinds (0 to 65535) separated by commas, or none; %q is not a kind", part)
		}
		kinds = append(kinds, k)
	}
	return kinds, nil
}

// parseRetention reads WISP_RETENTION: comma-separated KINDS:AGE rules,
// KINDS being a kind (1), a range (20000-29999) or * (every kind), AGE a Go
// duration (720h) or a number of days (30d). Empty: keep everything.
func parseRetention(s string) ([]storage.RetentionRule, error) {
	var rules []storage.RetentionRule
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		kinds, age, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("rule %q: want KINDS:AGE, such as 1:720h or 20000-29999:24h", part)
		}
		var r storage.RetentionRule
		switch kinds = strings.TrimSpace(kinds); {
		case kinds == "*":
			r.MinKind, r.MaxKind = 0, 65535
		case strings.Contains(kinds, "-"):
			lo, hi, _ := strings.Cut(kinds, "-")
			a, err1 := strconv.Atoi(strings.TrimSpace(lo))
			b, err2 := strconv.Atoi(strings.TrimSpace(hi))
			if err1 != nil || err2 != nil || a > b {
				return nil, fmt.Errorf("rule %q: %q is not a range of kinds such as 20000-29999", part, kinds)
			}
			r.MinKind, r.MaxKind = a, b
		default:
			k, err := strconv.Atoi(kinds)
			if err != nil {
				return nil, fmt.Errorf("rule %q: %q is not a kind, a range or *", part, kinds)
			}
			r.MinKind, r.MaxKind = k, k
		}
		if r.MinKind < 0 || r.MaxKind > 65535 {
			return nil, fmt.Errorf("rule %q: kinds go from 0 to 65535", part)
		}
		d, err := parseAge(strings.TrimSpace(age))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("rule %q: %q is not a positive age such as 24h or 30d", part, age)
		}
		r.MaxAge = d
		rules = append(rules, r)
	}
	return rules, nil
}

// parseAge reads a Go duration or whole days ("30d").
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n > 100*365 {
			return 0, errors.New("bad number of days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// newMetrics builds the Prometheus metrics of a relay not created yet:
// stats reads it once it is.
func newMetrics(store eventStore, stats func() relay.Stats) *metrics.Metrics {
	return metrics.New(metrics.Sources{
		Build:        metrics.Build{Version: version, Verifier: verifier, Engine: store.engine()},
		Stats:        stats,
		DBSizes:      store.sizes,
		StoredEvents: storedEvents(store),
	})
}

// storedEvents reads the events in the database: a running total, cheap.
func storedEvents(store eventStore) func() (int64, bool) {
	return func() (int64, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, approx, err := store.Count(ctx, []nostr.Filter{{}})
		return n, err == nil && !approx
	}
}

// metricsOnRelayPort says whether /metrics is served on the relay's
// listener, bound at addr. The figures (connections, traffic, database
// size) are the operator's, not the public's, so without a token they are
// served there only when nothing but this machine can reach the port: it
// is bound to loopback and no reverse proxy forwards to it (a proxy is
// what WISP_REAL_IP_HEADER says is there). With WISP_METRICS_LISTEN they
// are served on that address instead.
func metricsOnRelayPort(cfg Config, addr net.Addr) bool {
	switch {
	case cfg.MetricsListen != "":
		return false
	case cfg.MetricsToken != "":
		return true
	case cfg.RealIPHeader != "":
		return false
	}
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// handler serves the relay, and /metrics beside it when withMetrics;
// otherwise /metrics is not found, rather than taken for a relay path.
// The dashboard is under /dashboard when there is one.
func handler(rl *relay.Relay, met *metrics.Metrics, token string, withMetrics bool, dash http.Handler) http.Handler {
	mux := http.NewServeMux()
	if dash != nil {
		mux.Handle("/dashboard", dash)
		mux.Handle("/dashboard/", dash)
	}
	if withMetrics {
		mux.Handle("/metrics", met.Handler(token))
	} else {
		mux.Handle("/metrics", http.NotFoundHandler())
	}
	mux.Handle("/", rl)
	return mux
}

// serveMetrics serves /metrics apart from the relay when WISP_METRICS_LISTEN
// says so, and otherwise warns when the relay's port does not serve it
// either. The returned function stops what it started.
func serveMetrics(cfg Config, met *metrics.Metrics, onRelayPort bool, log *slog.Logger) (stop func(), err error) {
	if cfg.MetricsListen == "" {
		if !onRelayPort {
			log.Warn("/metrics is not served: the relay's port is reachable beyond this machine " +
				"(not bound to loopback, or behind a proxy: WISP_REAL_IP_HEADER); " +
				"set WISP_METRICS_LISTEN to a private address, or WISP_METRICS_TOKEN")
		}
		return func() {}, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", met.Handler(cfg.MetricsToken))
	return serveAside(cfg.MetricsListen, "metrics", "/metrics", mux, log)
}
