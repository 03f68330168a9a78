package groups_test

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
	"github.com/wisp-relay/wisp/groups"
	"github.com/wisp-relay/wisp/internal/wstest"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// testRelay is a real relay with groups on, over a real SQLite file,
// behind a real HTTP server. restart stops it and starts another over the
// same file, as a new process would.
type testRelay struct {
	t      *testing.T
	path   string
	relay  *relay.Relay
	store  *sqlite.Store
	groups *groups.Groups
	srv    *httptest.Server
	url    string
	sk, pk string // the relay's own key
	cfg    groups.Config
	tune   func(*relay.Config)
}

func startRelay(t *testing.T, cfg groups.Config, tune func(*relay.Config)) *testRelay {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	cfg.SecretKey, cfg.PublicKey = sk, pk
	if cfg.MaxGroups == 0 {
		cfg.MaxGroups = 100
	}
	if cfg.MaxMembers == 0 {
		cfg.MaxMembers = 100
	}
	tr := &testRelay{t: t, path: filepath.Join(t.TempDir(), "wisp.db"), sk: sk, pk: pk, cfg: cfg, tune: tune}
	tr.start()
	t.Cleanup(tr.stop)
	return tr
}

func (tr *testRelay) start() {
	t := tr.t
	t.Helper()
	store, err := sqlite.Open(context.Background(), tr.path, sqlite.Options{SearchKinds: []int{1, 9}})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	g, err := groups.New(tr.cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Load(context.Background()); err != nil {
		t.Fatalf("load groups: %v", err)
	}
	cfg := relay.Config{Limits: relay.DefaultLimits(), Version: "test", Groups: g,
		Info:       relay.Info{Name: "groups test", Self: tr.pk},
		Negentropy: relay.NegentropyConfig{Enabled: true}}
	if tr.tune != nil {
		tr.tune(&cfg)
	}
	r := relay.New(cfg, store)
	r.Start()
	g.Start()
	tr.relay, tr.store, tr.groups = r, store, g
	tr.srv = httptest.NewServer(r)
	tr.url = "ws" + strings.TrimPrefix(tr.srv.URL, "http")
}

func (tr *testRelay) stop() {
	if tr.relay == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.relay.Shutdown(ctx); err != nil {
		tr.t.Errorf("shutdown: %v", err)
	}
	tr.srv.Close()
	tr.groups.Close()
	if err := tr.store.Close(); err != nil {
		tr.t.Errorf("close store: %v", err)
	}
	tr.relay = nil
}

// restart stops the relay and starts a new one over the same database.
func (tr *testRelay) restart() {
	tr.t.Helper()
	tr.stop()
	tr.start()
}

type (
	key    = wstest.Key
	client = wstest.Client
)

var (
	newKey     = wstest.NewKey
	dial       = wstest.Dial
	now        = wstest.Now
	str        = wstest.Str
	h          = wstest.H
	p          = wstest.P
	ids        = wstest.IDs
	hasID      = wstest.HasID
	eventually = wstest.Eventually
)

type nip11Doc struct {
	NIPs  []int           `json:"supported_nips"`
	Self  string          `json:"self"`
	NIP29 map[string]bool `json:"nip29"`
}

func nip11(t *testing.T, tr *testRelay) nip11Doc {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, tr.srv.URL, nil)
	req.Header.Set("Accept", "application/nostr+json")
	resp, err := tr.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc nip11Doc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}
