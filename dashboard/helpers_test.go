package dashboard

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/wisp-relay/wisp/internal/wstest"
	"github.com/wisp-relay/wisp/metrics"
	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

const testToken = "test-token-0123456789"

// testSite is a real relay on a real SQLite file with its NIP-86 API,
// Prometheus metrics and the dashboard, served as cmd/wisp serves them.
type testSite struct {
	t     *testing.T
	relay *relay.Relay
	dash  *Dashboard
	tally *Tally
	admin wstest.Key
	http  string // http://127.0.0.1:port
	ws    string // ws://127.0.0.1:port
}

// startSite starts it; tune may change the dashboard's configuration.
func startSite(t *testing.T, tune ...func(*Config)) *testSite {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "wisp.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	admin := wstest.NewKey(t)
	lists := policy.NewLists(nil, nil, nil, nil)
	mgr := policy.NewAdmin(lists, store, store, nil)
	if err := mgr.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.New(policy.Config{}, lists)
	if err != nil {
		t.Fatal(err)
	}
	var rl *relay.Relay
	met := metrics.New(metrics.Sources{Stats: func() relay.Stats { return rl.Stats() }})
	tally := NewTally(true)
	rl = relay.New(relay.Config{
		Limits: relay.DefaultLimits(), Version: "test", Info: relay.Info{Name: "test relay"},
		Policy: pol, Manager: mgr, AdminPubkeys: []string{admin.PK},
		Metrics: met, Senders: tally,
	}, store)
	rl.OnStored(tally.Stored)
	rl.Start()
	cfg := Config{
		Auth: rl, Admins: true, Token: testToken, Tally: tally,
		ShowIP: func(ip string) string { return "tag-of-" + ip }, IPsShown: "hashed",
		Stats: rl.Stats, Totals: met.Totals, DBSizes: store.FileSizes,
		StoredEvents: func() (int64, bool) {
			n, approx, err := store.Count(context.Background(), []nostr.Filter{{}})
			return n, err == nil && !approx
		},
		KindCounts: func(ctx context.Context, limit int) ([]KindCount, error) {
			kcs, err := store.KindCounts(ctx, limit)
			out := make([]KindCount, len(kcs))
			for i, kc := range kcs {
				out[i] = KindCount{kc.Kind, kc.Events}
			}
			return out, err
		},
		RelayName: rl.Name,
	}
	for _, f := range tune {
		f(&cfg)
	}
	dash := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { dash.Run(ctx); close(done) }()

	mux := http.NewServeMux()
	mux.Handle("/dashboard", dash)
	mux.Handle("/dashboard/", dash)
	mux.Handle("/", rl)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		cancel()
		<-done
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := rl.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
		pol.Close()
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &testSite{t: t, relay: rl, dash: dash, tally: tally, admin: admin, http: srv.URL, ws: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

// nip98 is a NIP-98 Authorization header signed by k for method and u;
// tweak may spoil the event before it is signed.
func nip98(t *testing.T, k wstest.Key, method, u string, tweak func(*nostr.Event)) string {
	t.Helper()
	ev := &nostr.Event{Kind: 27235, CreatedAt: nostr.Now(), Content: "", Tags: nostr.Tags{
		{"u", u}, {"method", method},
		{"r", nostr.GeneratePrivateKey()[:16]}, // no two alike within a second
	}}
	if tweak != nil {
		tweak(ev)
	}
	if err := ev.Sign(k.SK); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	return "Nostr " + base64.StdEncoding.EncodeToString(b)
}

// browser is an HTTP client with cookies, as a browser is.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// do sends a request and returns the response with its body read.
func (b *browser) do(method, u, auth, ctype, body string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

// loginToken logs in with the token through the login page's form.
func (b *browser) loginToken(site string) {
	b.t.Helper()
	resp, body := b.do("POST", site+"/dashboard/login", "", "application/x-www-form-urlencoded", url.Values{"token": {testToken}}.Encode())
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("token login: %d %s", resp.StatusCode, body)
	}
}

// data fetches the JSON the script polls; it must be served.
func (b *browser) data(site string) Data {
	b.t.Helper()
	resp, body := b.do("GET", site+"/dashboard/data", "", "", "")
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("data: %d %s", resp.StatusCode, body)
	}
	var d Data
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		b.t.Fatalf("data %q: %v", body, err)
	}
	return d
}

// eventually polls cond until it holds, failing the test at the deadline
// with what the last try said.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s: %s", what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
