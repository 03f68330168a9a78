package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"

	"github.com/wisp-relay/wisp/internal/wstest"
)

// Scale-out (issue 12, docs/scale-out.md): real wisp serve processes, each
// on its own loopback port, on one PostgreSQL database, seen the way
// clients see them: over websockets, with signed events.

// pgNode is one wisp serve on the shared database.
type pgNode struct {
	p    *wispProc
	ws   string // ws://host:port
	http string // http://host:port, for NIP-86
	env  []string
}

// startPGNode starts a node on the database at dbURL with a data directory
// of its own (its relay key and mirror positions).
func startPGNode(t *testing.T, bin, dbURL string, extra ...string) *pgNode {
	t.Helper()
	env := append([]string{
		"WISP_DATABASE_URL=" + dbURL, "WISP_DATA_DIR=" + t.TempDir(),
		"WISP_LISTEN=127.0.0.1:0", "WISP_MAX_CONNS_PER_IP=0",
	}, extra...)
	p := startProc(t, bin, env...)
	return &pgNode{p: p, ws: "ws://" + p.addr, http: "http://" + p.addr, env: env}
}

// stop sends SIGTERM and waits until the node has ended.
func (n *pgNode) stop(t *testing.T) {
	t.Helper()
	n.p.signal(syscall.SIGTERM)
	select {
	case <-n.p.logDone:
	case <-time.After(60 * time.Second):
		t.Fatal("wisp serve did not end after SIGTERM")
	}
	if err := n.p.cmd.Wait(); err != nil {
		t.Errorf("wisp serve after SIGTERM: %v\n%s", err, n.p.log())
	}
}

// subscribeOn opens a connection to url with one subscription to filter, read
// to its EOSE; it returns the client and the stored events it was sent.
func subscribeOn(t *testing.T, url string, filter nostr.Filter) (*wstest.Client, []string) {
	t.Helper()
	c := wstest.Dial(t, url)
	c.Send("REQ", "live", filter)
	var stored []string
	for {
		m := c.Next()
		switch wstest.Str(t, m[0]) {
		case "EVENT":
			stored = append(stored, eventID(t, m[2]))
		case "EOSE":
			return c, stored
		default:
			t.Fatalf("subscribing: %s", m)
		}
	}
}

func eventID(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var ev struct{ ID string }
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.ID
}

// liveUntil reads c's live events up to and including the one with id
// last, and returns their ids in the order they came.
func liveUntil(t *testing.T, c *wstest.Client, last string) []string {
	t.Helper()
	var ids []string
	for {
		m := c.Next()
		if wstest.Str(t, m[0]) != "EVENT" {
			t.Fatalf("waiting for live events: %s", m)
		}
		id := eventID(t, m[2])
		ids = append(ids, id)
		if id == last {
			return ids
		}
	}
}

// storedOn is the ids a REQ for filter finds on the node at url, sorted.
func storedOn(t *testing.T, url string, filter nostr.Filter) []string {
	t.Helper()
	c := wstest.Dial(t, url)
	defer c.Close()
	ids := wstest.IDs(c.Events(filter))
	slices.Sort(ids)
	return ids
}

// pipelined sends every event on one connection to url without waiting for
// answers, from a goroutine of its own, and reads OKs until the relay has
// answered all or closed the connection; it returns the ids answered OK
// true and how many answers came. onOK is called after each answer, from
// the reading goroutine.
func pipelined(url string, evs []*nostr.Event, onOK func(n int)) (accepted []string, answered int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, 0, err
	}
	defer ws.CloseNow()
	go func() {
		for _, ev := range evs {
			b, _ := json.Marshal([]any{"EVENT", ev})
			if ws.Write(ctx, websocket.MessageText, b) != nil {
				return // the relay went away
			}
		}
	}()
	for answered < len(evs) {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return accepted, answered, nil // closed: what was answered stands
		}
		var m []json.RawMessage
		var verb, id string
		var ok bool
		if json.Unmarshal(data, &m) != nil || len(m) < 3 || json.Unmarshal(m[0], &verb) != nil || verb != "OK" {
			continue
		}
		json.Unmarshal(m[1], &id) //nolint:errcheck // checked below
		if json.Unmarshal(m[2], &ok) != nil || id == "" {
			return accepted, answered, fmt.Errorf("bad OK: %s", data)
		}
		if ok {
			accepted = append(accepted, id)
		}
		answered++
		if onOK != nil {
			onOK(answered)
		}
	}
	return accepted, answered, nil
}

func TestScaleOutOnPostgres(t *testing.T) {
	dbURL := pg.Database(t)
	bin := buildWisp(t)
	admin := wstest.NewKey(t)
	start := func() *pgNode { return startPGNode(t, bin, dbURL, "WISP_ADMIN_PUBKEYS="+admin.PK) }
	nodes := []*pgNode{start(), start(), start()}
	a, b := nodes[0], nodes[1]

	t.Run("live on every other node exactly once", func(t *testing.T) {
		k := wstest.NewKey(t)
		f := nostr.Filter{Authors: []string{k.PK}}
		subB, _ := subscribeOn(t, nodes[1].ws, f)
		subC, _ := subscribeOn(t, nodes[2].ws, f)
		pub := wstest.Dial(t, a.ws)
		var sent []string
		for range 20 {
			ev := k.Sign(t, 1)
			pub.MustPublish(ev)
			sent = append(sent, ev.ID)
		}
		for name, sub := range map[string]*wstest.Client{"B": subB, "C": subC} {
			if got := liveUntil(t, sub, sent[len(sent)-1]); !slices.Equal(got, sent) {
				t.Errorf("node %s sent live %d events %v, want the %d published on A, each once, in order %v", name, len(got), got, len(sent), sent)
			}
		}
		// Nothing more comes: a later event is the next one on each.
		marker := k.Sign(t, 1)
		pub.MustPublish(marker)
		for name, sub := range map[string]*wstest.Client{"B": subB, "C": subC} {
			if got := liveUntil(t, sub, marker.ID); len(got) != 1 {
				t.Errorf("node %s sent %v before the next event: repeats", name, got)
			}
		}
	})

	t.Run("a 64 KiB event", func(t *testing.T) {
		k := wstest.NewKey(t)
		f := nostr.Filter{Authors: []string{k.PK}}
		subB, _ := subscribeOn(t, nodes[1].ws, f)
		subC, _ := subscribeOn(t, nodes[2].ws, f)
		big := k.SignAt(t, 1, wstest.Now(), strings.Repeat("wisp ", 64<<10/5))
		wstest.Dial(t, a.ws).MustPublish(big)
		for name, sub := range map[string]*wstest.Client{"B": subB, "C": subC} {
			m := sub.Next()
			var got nostr.Event
			if wstest.Str(t, m[0]) != "EVENT" || json.Unmarshal(m[2], &got) != nil {
				t.Fatalf("node %s: %.200s", name, m)
			}
			if got.ID != big.ID || got.Content != big.Content || !got.CheckID() {
				t.Errorf("node %s sent a different event (%d bytes of content, want %d)", name, len(got.Content), len(big.Content))
			}
		}
		if got := storedOn(t, nodes[2].ws, f); !slices.Equal(got, []string{big.ID}) {
			t.Errorf("REQ on C: %v, want the big event", got)
		}
	})

	t.Run("deletion and vanish on A hold on B", func(t *testing.T) {
		k := wstest.NewKey(t)
		f := nostr.Filter{Authors: []string{k.PK}, Kinds: []int{1}}
		pub := wstest.Dial(t, a.ws)
		e1, e2 := k.Sign(t, 1), k.Sign(t, 1)
		pub.MustPublish(e1)
		pub.MustPublish(e2)
		want := []string{e1.ID, e2.ID}
		slices.Sort(want)
		if got := storedOn(t, b.ws, f); !slices.Equal(got, want) {
			t.Fatalf("REQ on B before the deletion: %v, want %v", got, want)
		}
		pub.MustPublish(k.Sign(t, 5, nostr.Tag{"e", e1.ID}))
		if got := storedOn(t, b.ws, f); !slices.Equal(got, []string{e2.ID}) {
			t.Errorf("REQ on B after a NIP-09 deletion of %s on A: %v, want only %s", e1.ID, got, e2.ID)
		}
		// e1 is tombstoned on every node: B refuses it again.
		if res := wstest.Dial(t, b.ws).Publish(e1); res.OK {
			t.Errorf("B stored the deleted event again")
		}

		pub.MustPublish(k.SignAt(t, 62, wstest.Now()+1, "", nostr.Tag{"relay", "ALL_RELAYS"}))
		if got := storedOn(t, b.ws, f); len(got) != 0 {
			t.Errorf("REQ on B after a NIP-62 request to vanish on A: %v, want nothing", got)
		}
		if res := wstest.Dial(t, b.ws).Publish(k.SignAt(t, 1, wstest.Now()-60, "before the request")); res.OK {
			t.Errorf("B stored an event of a vanished pubkey from before its request")
		}
	})

	t.Run("two nodes racing on one replaceable address", func(t *testing.T) {
		k := wstest.NewKey(t)
		base := wstest.Now() - 100
		var onA, onB []*nostr.Event
		for i := range 30 {
			onA = append(onA, k.SignAt(t, 10002, base+int64(i), fmt.Sprint("a ", i)))
			onB = append(onB, k.SignAt(t, 10002, base+int64(i), fmt.Sprint("b ", i)))
		}
		// The newest two tie on created_at: the lowest id wins.
		top := []*nostr.Event{onA[len(onA)-1], onB[len(onB)-1]}
		winner := min(top[0].ID, top[1].ID)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, n := range []struct {
			url string
			evs []*nostr.Event
		}{{a.ws, onA}, {b.ws, onB}} {
			wg.Go(func() {
				_, answered, err := pipelined(n.url, n.evs, nil)
				if err == nil && answered != len(n.evs) {
					err = fmt.Errorf("%d answers to %d events", answered, len(n.evs))
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		for i, n := range nodes {
			if got := storedOn(t, n.ws, nostr.Filter{Authors: []string{k.PK}, Kinds: []int{10002}}); !slices.Equal(got, []string{winner}) {
				t.Errorf("node %d holds %v, want the one winner %s", i, got, winner)
			}
		}
	})

	t.Run("a NIP-86 ban on A refuses the pubkey on B", func(t *testing.T) {
		spammer := wstest.NewKey(t)
		pubB := wstest.Dial(t, b.ws)
		pubB.MustPublish(spammer.Sign(t, 1))
		if _, msg, status := wstest.RPC(t, a.http, admin, "banpubkey", spammer.PK, "spam"); status != 200 || msg != "" {
			t.Fatalf("banpubkey on A: HTTP %d %q", status, msg)
		}
		var last wstest.OK
		wstest.Eventually(t, "B to refuse the banned pubkey", func() bool {
			last = pubB.Publish(spammer.Sign(t, 1))
			return !last.OK
		})
		if !strings.HasPrefix(last.Msg, "blocked:") {
			t.Errorf("B refused the banned pubkey with %q, want blocked:", last.Msg)
		}
	})

	t.Run("a node restarted mid-stream", func(t *testing.T) {
		k := wstest.NewKey(t)
		f := nostr.Filter{Authors: []string{k.PK}}
		pub := wstest.Dial(t, a.ws)
		base := wstest.Now() - 300
		n := 0
		batch := func() []string {
			var ids []string
			for range 10 {
				ev := k.SignAt(t, 1, base+int64(n), fmt.Sprint("stream ", n))
				n++
				pub.MustPublish(ev)
				ids = append(ids, ev.ID)
			}
			return ids
		}
		sub, _ := subscribeOn(t, nodes[2].ws, f)
		first := batch()
		seen := liveUntil(t, sub, first[len(first)-1])
		nodes[2].stop(t)
		second := batch() // while C is down
		nodes[2] = start()
		// The subscriber reconnects, asking for what came since the last
		// event it saw, and stays subscribed.
		since := nostr.Timestamp(base + int64(len(seen)-1))
		f2 := f
		f2.Since = &since
		sub2, history := subscribeOn(t, nodes[2].ws, f2)
		third := batch()
		live := liveUntil(t, sub2, third[len(third)-1])
		got := map[string]int{}
		for _, id := range slices.Concat(seen, history, live) {
			got[id]++
		}
		for _, id := range slices.Concat(first, second, third) {
			if got[id] == 0 {
				t.Errorf("event %s never reached the subscriber", id)
			}
		}
		for _, id := range slices.Concat(history, live) {
			if !slices.Contains(first, id) && got[id] != 1 {
				t.Errorf("event %s reached the subscriber %d times after it reconnected", id, got[id])
			}
		}
		if !slices.Equal(live, third) {
			t.Errorf("live after the restart: %v, want %v", live, third)
		}
	})

	t.Run("SIGTERM loses nothing acknowledged", func(t *testing.T) {
		k := wstest.NewKey(t)
		var evs []*nostr.Event
		for i := range 2000 {
			evs = append(evs, k.SignAt(t, 1, wstest.Now()-3000+int64(i), fmt.Sprint("burst ", i)))
		}
		var once sync.Once
		accepted, answered, err := pipelined(nodes[1].ws, evs, func(n int) {
			if n == 100 { // mid-stream: most are still to come
				once.Do(func() { syscall.Kill(nodes[1].p.cmd.Process.Pid, syscall.SIGTERM) }) //nolint:errcheck // checked by the wait below
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-nodes[1].p.logDone:
		case <-time.After(60 * time.Second):
			t.Fatal("B did not end after SIGTERM")
		}
		if len(accepted) < 100 {
			t.Fatalf("only %d events accepted before the stop", len(accepted))
		}
		stored := map[string]bool{}
		for chunk := range slices.Chunk(accepted, 500) {
			for _, id := range storedOn(t, a.ws, nostr.Filter{IDs: chunk}) {
				stored[id] = true
			}
		}
		lost := 0
		for _, id := range accepted {
			if !stored[id] {
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("%d of the %d events B answered OK true are not in the database", lost, len(accepted))
		}
		t.Logf("B answered %d of %d events before it stopped, %d OK true", answered, len(evs), len(accepted))
	})
}

// A zero-downtime upgrade (SIGUSR2) works on PostgreSQL too, where no data
// directory lock is handed over: the new process takes the socket, the old
// one drains, and every event either process answered OK true is stored.
func TestUpgradeOnPostgres(t *testing.T) {
	dbURL := pg.Database(t)
	bin := buildWisp(t)
	n := startPGNode(t, bin, dbURL)
	tr := &traffic{refused: map[string]int{}}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		k := wstest.NewKey(t)
		wg.Go(func() { tr.publishLoop(ctx, t, n.ws, k) })
	}
	defer func() { stop(); wg.Wait() }()
	wstest.Eventually(t, "events accepted by the old process", func() bool { return tr.acked() >= 40 })

	exited := make(chan error, 1)
	go func() { exited <- n.p.cmd.Wait() }()
	mark := n.p.mark()
	n.p.signal(syscall.SIGUSR2)
	rec := n.p.waitLog(mark, "wisp listening", func(r map[string]any) bool { return r["took_over_from"] != nil })
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the old process exited with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the old process did not exit")
	}
	switched := tr.acked()
	wstest.Eventually(t, "events accepted by the new process", func() bool { return tr.acked() >= switched+40 })
	stop()
	wg.Wait()
	mark = n.p.mark()
	if err := syscall.Kill(int(rec["pid"].(float64)), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	n.p.waitLog(mark, "wisp stopped", nil)

	tr.mu.Lock()
	okIDs := slices.Clone(tr.okIDs)
	for why := range tr.refused {
		if why != "error: relay is shutting down" {
			t.Errorf("refused %q", why)
		}
	}
	tr.mu.Unlock()
	out, _ := runOK(t, []string{"WISP_DATA_DIR=" + t.TempDir(), "WISP_DATABASE_URL=" + dbURL}, "export")
	stored := exportedIDs(t, out)
	for _, id := range okIDs {
		if _, found := slices.BinarySearch(stored, id); !found {
			t.Errorf("event %s answered OK true is not stored", id)
		}
	}
}
