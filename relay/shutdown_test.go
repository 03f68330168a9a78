package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// hangingStore is a real SQLite store whose Save blocks, whatever its
// context says, until released: a disk that stopped answering.
type hangingStore struct {
	*sqlite.Store
	saving  chan struct{} // closed when the first Save starts
	release chan struct{}
	once    sync.Once
}

func (s *hangingStore) Save(ctx context.Context, items []storage.Item) ([]storage.Result, error) {
	s.once.Do(func() { close(s.saving) })
	<-s.release
	return s.Store.Save(ctx, items)
}

// When Save hangs, Shutdown still returns by its deadline, and every EVENT
// the relay took (in the writer, its queue, the verify pool, the handler
// and the connection's inbox) is answered OK false with `error:` before
// the close frame: never silence, never OK true.
func TestShutdownReturnsAndAnswersWhenSaveHangs(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "wisp.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := &hangingStore{Store: db, saving: make(chan struct{}), release: make(chan struct{})}
	// One worker and queues of one: the pipeline holds few events, the
	// rest wait in the handler and the inbox.
	r := relay.New(relay.Config{Limits: relay.DefaultLimits(), VerifyWorkers: 1, WriteQueue: 1, WriteBatchMax: 1}, store)
	r.Start()
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		srv.Close()
		db.Close()
	})
	c := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"))

	// Enough to fill the pipeline (1 saving, 1 queued for the writer, 1
	// on the verify worker, 64 queued for it), the handler (1) and the
	// inbox (16), plus the one the reader then holds.
	const n = 1 + 1 + 1 + 64 + 1 + 16 + 1
	k := newKey(t)
	sent := map[string]bool{}
	for i := range n {
		ev := k.sign(t, 1, now(), fmt.Sprint("stuck ", i))
		sent[ev.ID] = true
		c.send("EVENT", ev)
	}
	select {
	case <-store.saving:
	case <-time.After(10 * time.Second):
		t.Fatal("no Save started")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	returned := make(chan error, 1)
	go func() { returned <- r.Shutdown(ctx) }()

	answered := map[string]bool{}
	for len(answered) < n {
		m := c.next()
		if str(t, m[0]) != "OK" {
			t.Fatalf("want OK, got %s", join(m))
		}
		res := okResult{id: str(t, m[1]), msg: str(t, m[3])}
		if err := json.Unmarshal(m[2], &res.ok); err != nil {
			t.Fatal(err)
		}
		if !sent[res.id] || answered[res.id] {
			t.Fatalf("OK for %s: not sent, or answered twice", res.id)
		}
		answered[res.id] = true
		if res.ok || !strings.HasPrefix(res.msg, "error:") {
			t.Errorf("OK %v %q for an event never stored; want OK false error:", res.ok, res.msg)
		}
	}
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("connection not closed")
	}
	if code := websocket.CloseStatus(c.closeErr); code != websocket.StatusGoingAway {
		t.Errorf("closed with %v, want going away", c.closeErr)
	}
	select {
	case err := <-returned:
		if err == nil {
			t.Error("Shutdown reported no error though events were not stored")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return after its deadline")
	}
	close(store.release) // the writer finishes before the store closes
}

// Shutdown may be called twice at once (as tests' cleanups do): the
// second waits for the first.
func TestSecondShutdownWaitsForTheFirst(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	c.mustPublish(newKey(t).sign(t, 1, now(), "before"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- tr.relay.Shutdown(ctx) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	<-c.done
	if code := websocket.CloseStatus(c.closeErr); code != websocket.StatusGoingAway {
		t.Errorf("closed with %v, want going away", c.closeErr)
	}
}
