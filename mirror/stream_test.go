package mirror_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/mirror"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// runManager runs a Manager over local with one stream until the test ends
// or the returned stop is called.
func runManager(t *testing.T, local mirror.Local, store mirror.Store, stream, statePath string) (*mirror.Manager, func()) {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "mirror.json")
	if err := os.WriteFile(cfgPath, []byte(`{"streams":[`+stream+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mirror.Manager{Path: cfgPath, Local: local, Store: store, StatePath: statePath,
		ReloadEvery: 50 * time.Millisecond, PollEvery: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(stop)
	return m, stop
}

// saveDirect stores events in a node's database without its relay (which
// may be stopped).
func saveDirect(t *testing.T, n *node, evs []*nostr.Event) {
	t.Helper()
	items := make([]storage.Item, len(evs))
	for i, ev := range evs {
		raw, _ := json.Marshal(ev)
		items[i] = storage.Item{Event: ev, Raw: raw}
	}
	if _, err := n.store.Save(context.Background(), items); err != nil {
		t.Fatal(err)
	}
}

// signedAt returns n kind 1 events from the second at on, a few per second.
func signedAt(t *testing.T, at nostr.Timestamp, n int, label string) []*nostr.Event {
	t.Helper()
	evs := make([]*nostr.Event, n)
	for i := range evs {
		evs[i] = &nostr.Event{CreatedAt: at + nostr.Timestamp(i/4), Kind: 1, Tags: nostr.Tags{}, Content: fmt.Sprintf("%s %d", label, i)}
		if err := evs[i].Sign(corpusKey); err != nil {
			t.Fatal(err)
		}
	}
	return evs
}

// More events than the remote's largest limit are published while a down
// stream is cut off: after reconnecting it pages back to its resume point
// and gets them all.
func TestDownStreamCatchesUpPastRemoteLimit(t *testing.T) {
	local := startNode(t, true)
	remote := startNode(t, true)
	remote.cfg.Limits.MaxLimit, remote.cfg.Limits.DefaultLimit = 10, 10
	remote.restart()
	m, _ := runManager(t, local.relay, local.store, fmt.Sprintf(`{"dir":"down","urls":[%q],"filter":{"kinds":[1]}}`, remote.url), "")
	st := m.Stats()
	waitFor(t, 5*time.Second, "the stream to connect", func() bool { return st.Connects.Load() >= 1 })

	remote.stop()
	missed := signedAt(t, nostr.Now(), 37, "while away") // spread over 10 s, up to 4 a second
	saveDirect(t, remote, missed)
	remote.start(remote.addr)
	waitFor(t, 10*time.Second, "every event published during the outage", func() bool {
		for _, ev := range missed {
			if !has(local, ev.ID) {
				return false
			}
		}
		return true
	})
	// And the stream is live again.
	ev := newEvent(t, "after catching up")
	publish(t, remote.url, ev)
	waitFor(t, 2*time.Second, "a live event", func() bool { return has(local, ev.ID) })
}

// Streams keep their positions in the state file: after a restart, a down
// stream gets what the remote stored meanwhile and an up stream sends what
// was stored here meanwhile.
func TestStreamsResumeAfterRestart(t *testing.T) {
	local, remote := startNode(t, true), startNode(t, true)
	state := filepath.Join(t.TempDir(), "state.json")
	stream := fmt.Sprintf(`{"dir":"both","urls":[%q],"filter":{"kinds":[1]}}`, remote.url)
	m, stop := runManager(t, local.relay, local.store, stream, state)
	waitFor(t, 5*time.Second, "streams to connect", func() bool { return m.Stats().Connects.Load() >= 2 })
	before := newEvent(t, "before the restart")
	publish(t, local.url, before)
	waitFor(t, 2*time.Second, "a local event to go up", func() bool { return has(remote, before.ID) })
	stop()
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state file: %v", err)
	}

	down, up := newEvent(t, "down while stopped"), newEvent(t, "up while stopped")
	publish(t, remote.url, down)
	publish(t, local.url, up)
	time.Sleep(50 * time.Millisecond)
	if has(local, down.ID) || has(remote, up.ID) {
		t.Fatal("an event moved while the streams were stopped")
	}

	m, _ = runManager(t, local.relay, local.store, stream, state)
	waitFor(t, 5*time.Second, "the remote's event stored meanwhile", func() bool { return has(local, down.ID) })
	waitFor(t, 5*time.Second, "the local event stored meanwhile", func() bool { return has(remote, up.ID) })
	time.Sleep(100 * time.Millisecond)
	if sent := m.Stats().Sent.Load(); sent != 1 {
		t.Errorf("sent %d events up after the restart, want 1 (no echo, nothing twice)", sent)
	}
}

// A mirror running in its own process (here: its own store handle and
// relay pipeline over the same database file) sends up what another
// process stored, and still never echoes what came down.
func TestUpStreamSendsWhatAnotherProcessStored(t *testing.T) {
	serve, remote := startNode(t, true), startNode(t, true)
	store, err := sqlite.Open(context.Background(), serve.path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rl := relay.New(relay.Config{Limits: relay.DefaultLimits()}, store)
	rl.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rl.Shutdown(ctx)
	})
	m, _ := runManager(t, rl, store, fmt.Sprintf(`{"dir":"both","urls":[%q],"filter":{"kinds":[1]}}`, remote.url), "")
	st := m.Stats()
	waitFor(t, 5*time.Second, "streams to connect", func() bool { return st.Connects.Load() >= 2 })

	evs := signedAt(t, nostr.Now(), 20, "stored by serve")
	serve.put(evs) // through the other process's relay: no hook here
	waitFor(t, 5*time.Second, "events stored by the other process to go up", func() bool {
		for _, ev := range evs {
			if !has(remote, ev.ID) {
				return false
			}
		}
		return true
	})
	down := newEvent(t, "from the remote")
	publish(t, remote.url, down)
	waitFor(t, 2*time.Second, "the remote's event to come down", func() bool { return has(serve, down.ID) })
	time.Sleep(200 * time.Millisecond) // several polls
	if sent := st.Sent.Load(); sent != int64(len(evs)) {
		t.Errorf("sent %d events up, want %d (no echo of the event that came down)", sent, len(evs))
	}
}

// failingStore is a real SQLite store whose Save fails, while failing is
// set, for any batch holding the event id: a disk that hiccups.
type failingStore struct {
	*sqlite.Store
	id       string
	failing  atomic.Bool
	failures atomic.Int64
}

func (s *failingStore) Save(ctx context.Context, items []storage.Item) ([]storage.Result, error) {
	for _, it := range items {
		if it.Event.ID == s.id && s.failing.Load() {
			s.failures.Add(1)
			return nil, errors.New("disk hiccup")
		}
	}
	return s.Store.Save(ctx, items)
}

// A down stream moves its position only over events the local relay has
// stored: one the relay failed to store (`error: internal error`) holds it
// back, even when later events came, so that after a restart the stream
// fetches it again.
func TestDownStreamKeepsEventTheRelayFailedToStore(t *testing.T) {
	remote := startNode(t, false)
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "local.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	start := nostr.Now()
	missed := &nostr.Event{CreatedAt: start + 5, Kind: 1, Tags: nostr.Tags{}, Content: "not stored at first"}
	later := &nostr.Event{CreatedAt: start + 10, Kind: 1, Tags: nostr.Tags{}, Content: "stored"}
	for _, ev := range []*nostr.Event{missed, later} {
		if err := ev.Sign(corpusKey); err != nil {
			t.Fatal(err)
		}
	}
	store := &failingStore{Store: db, id: missed.ID}
	store.failing.Store(true)
	rl := relay.New(relay.Config{Limits: relay.DefaultLimits()}, store)
	rl.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rl.Shutdown(ctx)
	})
	state := filepath.Join(t.TempDir(), "state.json")
	stream := fmt.Sprintf(`{"dir":"down","urls":[%q],"filter":{"kinds":[1]}}`, remote.url)
	m, stop := runManager(t, rl, db, stream, state)
	waitFor(t, 5*time.Second, "the stream to connect", func() bool { return m.Stats().Connects.Load() >= 1 })

	publish(t, remote.url, missed)
	publish(t, remote.url, later)
	waitFor(t, 5*time.Second, "both events to come down and the first to fail", func() bool {
		return m.Stats().Received.Load() >= 2 && store.failures.Load() >= 1
	})
	stop()
	pos := readPositions(t, state)
	for key, at := range pos {
		if at > int64(missed.CreatedAt) {
			t.Errorf("position %s is %d, past the event not stored (%d)", key, at, missed.CreatedAt)
		}
	}

	store.failing.Store(false)
	runManager(t, rl, db, stream, state)
	waitFor(t, 5*time.Second, "the event fetched again after the restart", func() bool {
		ok, _ := db.Has(context.Background(), missed.ID)
		return ok
	})
}

func readPositions(t *testing.T, path string) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Positions map[string]int64 `json:"positions"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Positions
}
