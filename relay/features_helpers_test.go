package relay_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// startRelayOpts is startRelay with store options (search kinds, count cap).
func startRelayOpts(t *testing.T, opts sqlite.Options, tune ...func(*relay.Config)) *testRelay {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "wisp.db"), opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	cfg := relay.Config{Limits: relay.DefaultLimits(), Version: "test", Info: relay.Info{Name: "test relay"}}
	for _, f := range tune {
		f(&cfg)
	}
	r := relay.New(cfg, store)
	r.Start()
	srv := httptest.NewServer(r)
	tr := &testRelay{relay: r, store: store, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return tr
}

// countReply is a parsed ["COUNT", id, {...}].
type countReply struct {
	Count       int64  `json:"count"`
	Approximate bool   `json:"approximate"`
	HLL         string `json:"hll"`
}

// count sends a COUNT and returns the answer; closed is the CLOSED reason
// when the relay refused.
func (c *client) count(subID string, filters ...nostr.Filter) (res countReply, closed string) {
	c.t.Helper()
	args := []any{"COUNT", subID}
	for _, f := range filters {
		args = append(args, f)
	}
	c.send(args...)
	m := c.next()
	switch str(c.t, m[0]) {
	case "COUNT":
		if len(m) != 3 || str(c.t, m[1]) != subID {
			c.t.Fatalf("bad COUNT answer %s", join(m))
		}
		if err := json.Unmarshal(m[2], &res); err != nil {
			c.t.Fatalf("bad COUNT body %s: %v", m[2], err)
		}
		return res, ""
	case "CLOSED":
		if str(c.t, m[1]) != subID {
			c.t.Fatalf("CLOSED for %s, want %s", m[1], subID)
		}
		return res, str(c.t, m[2])
	}
	c.t.Fatalf("want COUNT or CLOSED, got %s", join(m))
	return res, ""
}

func tsp(v int64) *nostr.Timestamp {
	x := nostr.Timestamp(v)
	return &x
}

// nip11NIPs fetches the NIP-11 document and returns its supported_nips.
func nip11NIPs(t *testing.T, tr *testRelay) []int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, tr.srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/nostr+json")
	resp, err := tr.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		SupportedNIPs []int `json:"supported_nips"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc.SupportedNIPs
}

// newServer serves h for the test and returns its http:// URL.
func newServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
