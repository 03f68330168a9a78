package mirror_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/mirror"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// node is a wisp relay on loopback over its own SQLite file.
type node struct {
	t     *testing.T
	cfg   relay.Config
	path  string // the database file
	store *sqlite.Store
	relay *relay.Relay
	srv   *httptest.Server
	addr  string
	url   string
}

func startNode(t *testing.T, negentropy bool) *node {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wisp.db")
	store, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, path: path, store: store, cfg: relay.Config{
		Limits:     relay.DefaultLimits(),
		Negentropy: relay.NegentropyConfig{Enabled: negentropy},
	}}
	n.start("127.0.0.1:0")
	t.Cleanup(func() {
		n.stop()
		store.Close()
	})
	return n
}

func (n *node) start(addr string) {
	n.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port of a restarted relay may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		n.t.Fatal(err)
	}
	n.relay = relay.New(n.cfg, n.store)
	n.relay.Start()
	n.srv = httptest.NewUnstartedServer(n.relay)
	n.srv.Listener.Close()
	n.srv.Listener = ln
	n.srv.Start()
	n.addr = ln.Addr().String()
	n.url = "ws://" + n.addr
}

func (n *node) stop() {
	if n.relay == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.relay.Shutdown(ctx)
	n.srv.Close()
	n.relay = nil
}

// restart stops the relay and starts it again on the same address and store.
func (n *node) restart() {
	n.stop()
	n.start(n.addr)
}

// put stores events through the relay's pipeline, without checking signatures.
func (n *node) put(evs []*nostr.Event) {
	n.t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for _, ev := range evs {
		wg.Add(1)
		n.relay.Ingest(context.Background(), ev, relay.IngestOptions{Source: wisp.SourceImport, NoVerify: true}, func(r relay.IngestResult) {
			if r.Outcome == relay.IngestRejected {
				mu.Lock()
				bad = append(bad, r.Reason)
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		n.t.Fatalf("put: %d rejected, first: %s", len(bad), bad[0])
	}
}

// ids returns the sorted ids of the stored events matching f.
func (n *node) ids(f nostr.Filter) []string {
	n.t.Helper()
	var out []string
	err := n.store.Scan(context.Background(), []nostr.Filter{f}, func(raw []byte) error {
		var ev struct{ ID string }
		if err := json.Unmarshal(raw, &ev); err != nil {
			return err
		}
		out = append(out, ev.ID)
		return nil
	})
	if err != nil {
		n.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

var (
	corpusOnce sync.Once
	corpus     []*nostr.Event
	corpusKey  = nostr.GeneratePrivateKey()
)

// events returns n signed events (signed once per test binary), kinds 1
// and 7 alternating, created_at spread over a few hundred seconds so that
// many share a second.
func events(t *testing.T, n int) []*nostr.Event {
	t.Helper()
	corpusOnce.Do(func() {
		base := nostr.Now() - 10000
		corpus = make([]*nostr.Event, 2000)
		var wg sync.WaitGroup
		for w := range 2 { // signing is the slow part under -race
			wg.Go(func() {
				for i := w; i < len(corpus); i += 2 {
					ev := &nostr.Event{
						CreatedAt: base + nostr.Timestamp(i/10),
						Kind:      []int{1, 7}[i%2],
						Tags:      nostr.Tags{},
						Content:   fmt.Sprintf("event %d", i),
					}
					if err := ev.Sign(corpusKey); err != nil {
						panic(err)
					}
					corpus[i] = ev
				}
			})
		}
		wg.Wait()
	})
	if n > len(corpus) {
		t.Fatalf("corpus has %d events", len(corpus))
	}
	return corpus[:n]
}

func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

func sync1(t *testing.T, local, remote *node, dir mirror.Direction, f nostr.Filter) mirror.SyncStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := mirror.Sync(ctx, mirror.SyncOptions{URL: remote.url, Filter: f, Dir: dir, Local: local.relay, Store: local.store, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("sync %s: %v (stats %+v)", dir, err, st)
	}
	return st
}

// Two relays with a few thousand events, each missing some of the other's,
// converge after a sync down, up or both. (Few differ: every transferred
// event costs a signature check, slow under -race.)
func TestSyncConverges(t *testing.T) {
	evs := events(t, 2000)
	t.Parallel()
	for _, tc := range []struct {
		dir                mirror.Direction
		localGets, remGets bool
	}{
		{mirror.Down, true, false},
		{mirror.Up, false, true},
		{mirror.Both, true, true},
	} {
		t.Run(tc.dir.String(), func(t *testing.T) {
			local, remote := startNode(t, true), startNode(t, true)
			local.put(evs[:1850])
			remote.put(evs[150:])
			before := [2][]string{local.ids(nostr.Filter{}), remote.ids(nostr.Filter{})}
			all := union(before[0], before[1])
			st := sync1(t, local, remote, tc.dir, nostr.Filter{})
			if st.Method != "negentropy" || st.Have != 150 || st.Need != 150 {
				t.Errorf("stats %+v, want negentropy with 150 only here and 150 only there", st)
			}
			want := [2][]string{before[0], before[1]}
			if tc.localGets {
				want[0] = all
			}
			if tc.remGets {
				want[1] = all
			}
			if got := local.ids(nostr.Filter{}); !slices.Equal(got, want[0]) {
				t.Errorf("local has %d events, want %d", len(got), len(want[0]))
			}
			if got := remote.ids(nostr.Filter{}); !slices.Equal(got, want[1]) {
				t.Errorf("remote has %d events, want %d", len(got), len(want[1]))
			}
			// A second sync finds nothing to do.
			if st := sync1(t, local, remote, tc.dir, nostr.Filter{}); tc.dir == mirror.Both && (st.Have != 0 || st.Need != 0) {
				t.Errorf("second sync: %+v", st)
			}
		})
	}
}

// A filtered sync moves only matching events.
func TestSyncFiltered(t *testing.T) {
	evs := events(t, 2000)
	local, remote := startNode(t, true), startNode(t, true)
	local.put(evs[:1800])
	remote.put(evs[200:])
	f := nostr.Filter{Kinds: []int{1}}
	sync1(t, local, remote, mirror.Both, f)
	if a, b := local.ids(f), remote.ids(f); !slices.Equal(a, b) || len(a) != 1000 {
		t.Errorf("kind 1: local %d, remote %d, want 1000 each", len(a), len(b))
	}
	seven := nostr.Filter{Kinds: []int{7}}
	if a, b := len(local.ids(seven)), len(remote.ids(seven)); a != 900 || b != 900 {
		t.Errorf("kind 7 moved: local %d, remote %d, want 900 each", a, b)
	}
}

// A remote without NIP-77 answers NEG-OPEN with a NOTICE: sync pages with REQ.
func TestSyncFallsBackWithoutNegentropy(t *testing.T) {
	evs := events(t, 1600)
	local, remote := startNode(t, true), startNode(t, false)
	local.put(evs[:1500])
	remote.put(evs[100:1600])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := mirror.Sync(ctx, mirror.SyncOptions{URL: remote.url, Dir: mirror.Both, Local: local.relay, Store: local.store, Timeout: 5 * time.Second, PageSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	if st.Method != "req" || !strings.Contains(st.Fallback, "NOTICE") {
		t.Errorf("stats %+v, want the REQ fallback after a NOTICE", st)
	}
	// The figures mean what negentropy's do, and agree with what moved.
	if st.Local != 1500 || st.Have != 100 || st.Need != 100 || st.Stored != 100 || st.Uploaded != 100 {
		t.Errorf("stats %+v, want 1500 here, 100 only here (uploaded), 100 only there (stored)", st)
	}
	a, b := local.ids(nostr.Filter{}), remote.ids(nostr.Filter{})
	if len(a) != 1600 || !slices.Equal(a, b) {
		t.Errorf("local %d, remote %d, want 1600 each", len(a), len(b))
	}
}

// A remote that stays silent after NEG-OPEN: sync falls back after the
// timeout and finishes.
func TestSyncFallsBackOnSilence(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			_, data, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			var msg []json.RawMessage
			if json.Unmarshal(data, &msg) != nil || len(msg) < 2 {
				continue
			}
			var verb, id string
			json.Unmarshal(msg[0], &verb)
			json.Unmarshal(msg[1], &id)
			mu.Lock()
			seen = append(seen, verb)
			mu.Unlock()
			if verb == "REQ" { // nothing stored
				b, _ := json.Marshal([]string{"EOSE", id})
				ws.Write(r.Context(), websocket.MessageText, b)
			}
		}
	}))
	defer srv.Close()
	local := startNode(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	st, err := mirror.Sync(ctx, mirror.SyncOptions{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Dir: mirror.Down, Local: local.relay, Store: local.store, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if st.Method != "req" || !strings.Contains(st.Fallback, "no answer") {
		t.Errorf("stats %+v, want the REQ fallback after silence", st)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(seen, "NEG-OPEN") || !slices.Contains(seen, "REQ") {
		t.Errorf("fake relay saw %v", seen)
	}
}

// waitAtLeast is the shortest deadline waitFor gives.
const waitAtLeast = 30 * time.Second

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	// d is what a quiet machine needs; CI runs these under -race beside
	// other packages' tests, many times slower, and the deadline only
	// bounds a failure, so it is never shorter than waitAtLeast.
	d = max(d, waitAtLeast)
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publish sends an event to a relay over a websocket, as a client would,
// and waits for its OK.
func publish(t *testing.T, url string, ev *nostr.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	b, _ := json.Marshal([]any{"EVENT", ev})
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	_, data, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"OK"`) || !strings.Contains(string(data), "true") {
		t.Fatalf("publish: %s", data)
	}
}

func has(n *node, id string) bool {
	ok, _ := n.store.Has(context.Background(), id)
	return ok
}

func newEvent(t *testing.T, content string) *nostr.Event {
	ev := &nostr.Event{CreatedAt: nostr.Now(), Kind: 1, Tags: nostr.Tags{}, Content: content}
	if err := ev.Sign(corpusKey); err != nil {
		t.Fatal(err)
	}
	return ev
}

// Live streams both ways with one remote carry new events within a second,
// survive a restart of the remote, and never echo an event back.
func TestLiveMirror(t *testing.T) {
	local, remote := startNode(t, true), startNode(t, true)
	cfgPath := filepath.Join(t.TempDir(), "mirror.json")
	cfg := fmt.Sprintf(`{"streams":[{"name":"peer","dir":"both","urls":[%q],"filter":{"kinds":[1]}}]}`, remote.url)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mirror.Manager{Path: cfgPath, Local: local.relay, Store: local.store, ReloadEvery: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	st := m.Stats()
	waitFor(t, 5*time.Second, "both streams to connect", func() bool { return st.Connects.Load() >= 2 })

	step := func(name string) {
		t.Helper()
		down, up := newEvent(t, name+" down"), newEvent(t, name+" up")
		sentBefore := st.Sent.Load()
		publish(t, remote.url, down)
		publish(t, local.url, up)
		waitFor(t, time.Second, name+": remote event to arrive here", func() bool { return has(local, down.ID) })
		waitFor(t, time.Second, name+": local event to arrive there", func() bool { return has(remote, up.ID) })
		// Give an echo time to happen, then check that only our own event
		// went up.
		time.Sleep(100 * time.Millisecond)
		if sent := st.Sent.Load() - sentBefore; sent != 1 {
			t.Errorf("%s: %d events sent up, want 1 (no echo of the event that came down)", name, sent)
		}
	}
	step("first")

	remote.restart()
	waitFor(t, 5*time.Second, "streams to reconnect", func() bool { return st.Connects.Load() >= 4 })
	step("after restart")

	// Events published on the remote while the mirror was cut off arrive
	// after it reconnects: resume from the last event seen, no gap.
	remote.stop()
	missed := newEvent(t, "while away")
	remote.start(remote.addr)
	publish(t, remote.url, missed)
	waitFor(t, 5*time.Second, "event published during the restart", func() bool { return has(local, missed.ID) })

	// No duplicates: every id once on both sides.
	for _, n := range []*node{local, remote} {
		ids := n.ids(nostr.Filter{})
		if len(slices.Compact(slices.Clone(ids))) != len(ids) {
			t.Error("duplicate ids stored")
		}
	}

	// A config change is picked up: the stream goes away.
	if err := os.WriteFile(cfgPath, []byte(`{"streams":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	late := newEvent(t, "after the stream was removed")
	publish(t, remote.url, late)
	time.Sleep(300 * time.Millisecond)
	if has(local, late.ID) {
		t.Error("event arrived after the stream was removed from the config")
	}
}
