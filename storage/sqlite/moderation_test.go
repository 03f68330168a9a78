package sqlite

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

type testKey struct{ sk, pk string }

func newTestKey(t testing.TB) testKey {
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	return testKey{sk, pk}
}

func (k testKey) event(t testing.TB, kind int, created int64, content string, tags ...nostr.Tag) *nostr.Event {
	t.Helper()
	ev := &nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(created), Content: content, Tags: nostr.Tags(tags)}
	if ev.Tags == nil {
		ev.Tags = nostr.Tags{}
	}
	if err := ev.Sign(k.sk); err != nil {
		t.Fatal(err)
	}
	return ev
}

func saveAll(t testing.TB, s *Store, evs ...*nostr.Event) []storage.Result {
	t.Helper()
	items := make([]storage.Item, len(evs))
	for i, ev := range evs {
		raw, _ := json.Marshal(ev)
		items[i] = storage.Item{Event: ev, Raw: raw}
	}
	res, err := s.Save(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// NIP-62 asks for true deletion: after a request to vanish and a
// checkpoint, the content is nowhere in the database file.
func TestVanishErasesBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	alice := newTestKey(t)
	secret := "SECRET-" + nostr.GeneratePrivateKey()
	// Enough events to fill whole pages, which deletion frees rather than
	// rewrites.
	var evs []*nostr.Event
	for i := range 200 {
		evs = append(evs, alice.event(t, 1, time.Now().Unix()-1000+int64(i), secret+strings.Repeat(" padding", 100)))
	}
	saveAll(t, s, evs...)
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); !bytes.Contains(b, []byte(secret)) {
		t.Fatal("test is void: the content never reached the file")
	}
	saveAll(t, s, alice.event(t, 62, time.Now().Unix(), "", nostr.Tag{"relay", "ALL_RELAYS"}))
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s still holds the vanished content", filepath.Base(f))
		}
	}
}
