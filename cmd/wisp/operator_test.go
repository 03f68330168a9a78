package main

import (
	"context"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// loopbackAddr is the relay's bound address (0.0.0.0:port for a relay on
// every interface) as a client on this machine dials it.
func loopbackAddr(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// metricsURL is the URL of the metrics listener, from its log line.
func metricsURL(t *testing.T, logs *lockedBuffer) string {
	t.Helper()
	m := regexp.MustCompile(`msg="metrics listening" url=(http://\S+)/metrics`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics listening line in the log:\n%s", logs)
	}
	return strings.TrimPrefix(m[1], "http://")
}

// /metrics is the operator's: on a relay port that others can reach it is
// served only behind the token, or apart on WISP_METRICS_LISTEN.
func TestMetricsNotOnAPublicPort(t *testing.T) {
	t.Run("every interface, no token", func(t *testing.T) {
		addr, _, logs := startWisp(t, "WISP_LISTEN=0.0.0.0:0")
		if _, code := scrapeMetrics(t, loopbackAddr(t, addr), ""); code != http.StatusNotFound {
			t.Errorf("/metrics on the public relay port: %d, want 404", code)
		}
		if !strings.Contains(logs.String(), "/metrics is not served") {
			t.Errorf("no warning that /metrics is not served:\n%s", logs)
		}
	})
	t.Run("loopback behind a proxy, no token", func(t *testing.T) {
		addr, _, _ := startWisp(t, "WISP_REAL_IP_HEADER=X-Forwarded-For")
		if _, code := scrapeMetrics(t, addr, ""); code != http.StatusNotFound {
			t.Errorf("/metrics on a port a proxy forwards to: %d, want 404", code)
		}
	})
	t.Run("every interface, token", func(t *testing.T) {
		addr, _, _ := startWisp(t, "WISP_LISTEN=0.0.0.0:0", "WISP_METRICS_TOKEN=s3cret")
		addr = loopbackAddr(t, addr)
		if _, code := scrapeMetrics(t, addr, ""); code != http.StatusUnauthorized {
			t.Errorf("/metrics without the token: %d, want 401", code)
		}
		if fams, code := scrapeMetrics(t, addr, "s3cret"); code != http.StatusOK || fams["wisp_connections_open"] == nil {
			t.Errorf("/metrics with the token: %d", code)
		}
	})
	t.Run("own address", func(t *testing.T) {
		addr, _, logs := startWisp(t, "WISP_LISTEN=0.0.0.0:0", "WISP_METRICS_LISTEN=127.0.0.1:0")
		if _, code := scrapeMetrics(t, loopbackAddr(t, addr), ""); code != http.StatusNotFound {
			t.Errorf("/metrics on the relay port: %d, want 404", code)
		}
		if fams, code := scrapeMetrics(t, metricsURL(t, logs), ""); code != http.StatusOK || fams["wisp_connections_open"] == nil {
			t.Errorf("/metrics on WISP_METRICS_LISTEN: %d", code)
		}
		if strings.Contains(logs.String(), "/metrics is not served") {
			t.Errorf("warns although /metrics is served:\n%s", logs)
		}
	})
	t.Run("own address, token", func(t *testing.T) {
		_, _, logs := startWisp(t, "WISP_METRICS_LISTEN=127.0.0.1:0", "WISP_METRICS_TOKEN=s3cret")
		at := metricsURL(t, logs)
		if _, code := scrapeMetrics(t, at, ""); code != http.StatusUnauthorized {
			t.Errorf("/metrics apart without the token: %d, want 401", code)
		}
		if _, code := scrapeMetrics(t, at, "s3cret"); code != http.StatusOK {
			t.Errorf("/metrics apart with the token: %d", code)
		}
	})
}

func TestMetricsListenBadAddress(t *testing.T) {
	err := run(t.Context(), nil, []string{"WISP_DATA_DIR=" + t.TempDir(), "WISP_METRICS_LISTEN=nowhere"}, nil, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "WISP_METRICS_LISTEN") {
		t.Fatalf("bad WISP_METRICS_LISTEN: %v", err)
	}
}

// clientIP is the address the tests' clients claim through X-Real-IP.
const clientIP = "203.0.113.77"

// visit opens a connection as clientIP, makes a stored query and closes,
// then waits for the relay to log the connection's end.
func visit(t *testing.T, addr string, logs *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr, &websocket.DialOptions{HTTPHeader: http.Header{"X-Real-Ip": {clientIP}}})
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t, ws}
	c.send("REQ", "q", nostr.Filter{Kinds: []int{1}})
	if m := c.next(); string(m[0]) != `"EOSE"` {
		t.Fatalf("want EOSE, got %s", m)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `msg="connection closed"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no connection closed line:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Client IPs are logged as a keyed hash by default (one tag per IP within
// a run), in full with WISP_LOG_IPS=full, and not at all with off; on
// every line that has one (here: opened, slow query, closed).
func TestLogIPs(t *testing.T) {
	base := []string{"WISP_REAL_IP_HEADER=X-Real-IP", "WISP_LOG_LEVEL=debug", "WISP_SLOW_QUERY=1ns"}
	remotes := func(logs string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`remote=(\S+)`).FindAllStringSubmatch(logs, -1) {
			out = append(out, m[1])
		}
		return out
	}
	lines := func(logs string) int {
		return strings.Count(logs, `msg="connection opened"`) + strings.Count(logs, `msg="connection closed"`) +
			strings.Count(logs, `msg="slow query"`)
	}

	t.Run("default: hashed", func(t *testing.T) {
		addr, _, logs := startWisp(t, base...)
		visit(t, addr, logs)
		out := logs.String()
		if strings.Contains(out, clientIP) {
			t.Errorf("the client's IP is in the log:\n%s", out)
		}
		got := remotes(out)
		if len(got) < 3 || len(got) != lines(out) {
			t.Fatalf("remote on %d lines of %d:\n%s", len(got), lines(out), out)
		}
		for _, r := range got {
			if r != got[0] || !regexp.MustCompile(`^ip-[0-9a-f]{16}$`).MatchString(r) {
				t.Errorf("remote tags %v: want one ip-<16 hex> for one client", got)
				break
			}
		}
	})
	t.Run("full", func(t *testing.T) {
		addr, _, logs := startWisp(t, append(base, "WISP_LOG_IPS=full")...)
		visit(t, addr, logs)
		got := remotes(logs.String())
		if len(got) < 3 || got[0] != clientIP {
			t.Errorf("remote values %v, want %s", got, clientIP)
		}
	})
	t.Run("off", func(t *testing.T) {
		addr, _, logs := startWisp(t, append(base, "WISP_LOG_IPS=off")...)
		visit(t, addr, logs)
		out := logs.String()
		if strings.Contains(out, clientIP) || len(remotes(out)) > 0 {
			t.Errorf("client addresses logged with off:\n%s", out)
		}
		if lines(out) < 3 {
			t.Errorf("the lines themselves are gone:\n%s", out)
		}
	})
}

// WISP_SYNC reaches the store (whose Open checks that the pragma took) and
// the start line says which it is.
func TestSyncSetting(t *testing.T) {
	for _, mode := range []string{"normal", "full"} {
		_, _, logs := startWisp(t, "WISP_SYNC="+mode)
		if !strings.Contains(logs.String(), "sync="+mode) {
			t.Errorf("WISP_SYNC=%s: not in the start line:\n%s", mode, logs)
		}
	}
}
