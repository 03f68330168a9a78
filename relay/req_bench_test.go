package relay_test

import (
	"context"
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

// BenchmarkReqRoundTrip times a REQ, its stored events, EOSE and CLOSE
// over a real websocket against a relay on a real SQLite file: the relay's
// cost per query (and one client's) with no other load.
func BenchmarkReqRoundTrip(b *testing.B) {
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
	// Stored through the relay, so that the JSON is what clients' events
	// become.
	sk := nostr.GeneratePrivateKey()
	var first string
	var wg sync.WaitGroup
	for i := range 300 {
		ev := &nostr.Event{CreatedAt: nostr.Timestamp(1_700_000_000 + i), Kind: 1,
			Tags: nostr.Tags{{"t", "bench"}}, Content: strings.Repeat("note ", 100)}
		if err := ev.Sign(sk); err != nil {
			b.Fatal(err)
		}
		if first == "" {
			first = ev.ID
		}
		wg.Add(1)
		r.Ingest(ctx, ev, relay.IngestOptions{}, func(res relay.IngestResult) {
			if res.Outcome != relay.IngestStored {
				b.Errorf("ingest: %v %s", res.Outcome, res.Reason)
			}
			wg.Done()
		})
	}
	wg.Wait()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 24)

	for _, sh := range []struct {
		name   string
		filter string
		events int
	}{
		{"id", fmt.Sprintf(`{"ids":[%q]}`, first), 1},
		{"tag-limit-50", `{"#t":["bench"],"limit":50}`, 50},
	} {
		b.Run(sh.name, func(b *testing.B) {
			req := []byte(`["REQ","s",` + sh.filter + `]`)
			closeMsg := []byte(`["CLOSE","s"]`)
			b.ReportAllocs()
			for b.Loop() {
				if err := ws.Write(ctx, websocket.MessageText, req); err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					_, data, err := ws.Read(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if strings.HasPrefix(string(data), `["EOSE"`) {
						break
					}
					n++
				}
				if n != sh.events {
					b.Fatalf("%d events, want %d", n, sh.events)
				}
				if err := ws.Write(ctx, websocket.MessageText, closeMsg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
