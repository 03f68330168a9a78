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

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// BenchmarkDuplicateEvent times stored events sent again over real
// websockets (4 connections, up to 50 EVENTs each awaiting their OK)
// against a relay on a real SQLite file: the duplicate path (parse, id
// hash, stored lookup, OK).
func BenchmarkDuplicateEvent(b *testing.B) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "wisp.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	r := relay.New(relay.Config{Limits: relay.DefaultLimits(), Version: "bench"}, store)
	r.Start()
	srv := httptest.NewServer(r)
	defer func() {
		srv.Close()
		r.Shutdown(ctx) //nolint:errcheck // the benchmark is over
	}()
	sk := nostr.GeneratePrivateKey()
	var msgs [][]byte
	var wg sync.WaitGroup
	for i := range 2000 {
		ev := &nostr.Event{CreatedAt: nostr.Timestamp(1_700_000_000 + i), Kind: 1,
			Tags: nostr.Tags{{"t", "bench"}}, Content: fmt.Sprintf("note %d %s", i, strings.Repeat("x", 200))}
		if err := ev.Sign(sk); err != nil {
			b.Fatal(err)
		}
		m, _ := json.Marshal([]any{"EVENT", ev})
		msgs = append(msgs, m)
		wg.Add(1)
		r.Ingest(ctx, ev, relay.IngestOptions{}, func(res relay.IngestResult) {
			if res.Outcome != relay.IngestStored {
				b.Errorf("ingest: %v %s", res.Outcome, res.Reason)
			}
			wg.Done()
		})
	}
	wg.Wait()

	const conns, inFlight = 4, 50
	wss := make([]*websocket.Conn, conns)
	for i := range wss {
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer ws.CloseNow()
		wss[i] = ws
	}
	b.ResetTimer()
	var run sync.WaitGroup
	for c, ws := range wss {
		n := b.N / conns
		if c < b.N%conns {
			n++
		}
		slots := make(chan struct{}, inFlight)
		run.Go(func() {
			for i := range n {
				slots <- struct{}{}
				if err := ws.Write(ctx, websocket.MessageText, msgs[(c*7919+i)%len(msgs)]); err != nil {
					b.Error(err)
					return
				}
			}
		})
		run.Go(func() {
			for range n {
				_, data, err := ws.Read(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				if !strings.Contains(string(data), `true,"duplicate:`) {
					b.Errorf("want OK true duplicate:, got %s", data)
					return
				}
				<-slots
			}
		})
	}
	run.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "duplicates/s")
}
