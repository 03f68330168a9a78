package relay_test

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// SetLive changes what clients are told and held to, on connections open
// before the change too, except the per-connection bounds (the read limit),
// which apply to connections opened after it.
func TestSetLiveChangesLimitsAndInfo(t *testing.T) {
	tr := startRelay(t)
	before := dial(t, tr.url)
	k := newKey(t)
	for i := range 10 {
		before.mustPublish(k.sign(t, 1, now()-int64(i), strings.Repeat("x", 200)))
	}
	if doc := nip11(t, tr); doc.Name != "test relay" || doc.Limitation.MaxLimit != 5000 || doc.Limitation.MaxContentLength != 131072 {
		t.Fatalf("NIP-11 before: %+v", doc)
	}

	l := tr.relay.Live()
	l.Limits.MaxContentLength = 100
	l.Limits.MaxLimit = 7
	l.Limits.DefaultLimit = 7
	l.Limits.MaxMessageBytes = 2000
	l.Info.Name, l.Info.Contact = "renamed", "mailto:op@example.com"
	l.Info.PublicURL = "wss://elsewhere.example.com" // fixed at New: ignored
	tr.relay.SetLive(l)

	doc := nip11(t, tr)
	if doc.Name != "renamed" || doc.Contact != "mailto:op@example.com" || doc.Limitation.MaxLimit != 7 ||
		doc.Limitation.MaxContentLength != 100 || doc.Limitation.MaxMessageLength != 2000 {
		t.Errorf("NIP-11 after: %+v", doc)
	}
	if got := tr.relay.Live().Info.PublicURL; got != "" {
		t.Errorf("PublicURL changed to %q", got)
	}
	resp, err := tr.srv.Client().Get(tr.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "renamed") {
		t.Error("the front page does not show the new name")
	}

	// The connection opened before is held to the new limits.
	wantRefused(t, before.publish(k.sign(t, 1, now(), strings.Repeat("y", 101))), "invalid")
	if got := before.query("capped", nostr.Filter{Kinds: []int{1}, Limit: 100}); len(got) != 7 {
		t.Errorf("REQ with limit 100 got %d events, want the new max_limit 7", len(got))
	}
	// Its socket keeps the read bound it was opened with, so a message
	// over the new limit is refused with a NOTICE and the connection stays;
	// a new connection's socket has the new bound.
	before.send("REQ", "big", nostr.Filter{Kinds: []int{1}, Tags: nostr.TagMap{"t": {strings.Repeat("a", 3000)}}})
	if m := before.next(); str(t, m[0]) != "NOTICE" || !strings.HasPrefix(str(t, m[1]), "invalid:") {
		t.Errorf("the connection opened before: %s to a 3 KB REQ", join(m))
	}
	before.mustPublish(k.sign(t, 1, now(), "still here"))
	after := dial(t, tr.url)
	after.send("REQ", "big", nostr.Filter{Kinds: []int{1}, Tags: nostr.TagMap{"t": {strings.Repeat("a", 3000)}}})
	<-after.done
	var ce websocket.CloseError
	if !errors.As(after.closeErr, &ce) || ce.Code != websocket.StatusMessageTooBig {
		t.Errorf("a new connection sending 3 KB: %v, want close 1009", after.closeErr)
	}
}

// Changing the live settings while clients are served is race free (go
// test -race).
func TestSetLiveWhileServing(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	k := newKey(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			l := tr.relay.Live()
			l.Limits.MaxLimit = 10 + i%2
			l.Info.Name = "n" + string(rune('a'+i%2))
			tr.relay.SetLive(l)
		}
	})
	for i := range 50 {
		c.mustPublish(k.sign(t, 1, now()-int64(i), "hello"))
		if doc := nip11(t, tr); doc.Limitation.MaxLimit < 10 || doc.Limitation.MaxLimit > 11 {
			t.Fatalf("max_limit %d", doc.Limitation.MaxLimit)
		}
	}
	close(stop)
	wg.Wait()
}
