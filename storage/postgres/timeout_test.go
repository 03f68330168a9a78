package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/internal/pgtest"
	"github.com/wisp-relay/wisp/storage"
)

// A server that stops answering (its processes stopped: connections stay
// open, nothing replies) fails a Save, a query and a count with an error
// instead of holding them forever, when their callers gave no deadline;
// once it answers again, so does the store.
func TestTimeoutOnFrozenServer(t *testing.T) {
	if err := pg.Available(); err != nil {
		pg.Database(t) // skips or fails as every PostgreSQL test does
	}
	// A server of its own: freezing the shared one would stall the
	// other tests.
	srv := pgtest.Start()
	t.Cleanup(srv.Stop)
	s := openURL(t, srv.Database(t), Options{Timeout: 2 * time.Second, MaxConns: 2})
	ctx := context.Background()
	sk := nostr.GeneratePrivateKey()
	now := time.Now().Unix()
	if _, err := s.Save(ctx, []storage.Item{signedItem(t, sk, 1, now, "before")}); err != nil {
		t.Fatal(err)
	}

	thaw := srv.Freeze(t)
	if _, err := s.Save(ctx, []storage.Item{signedItem(t, sk, 1, now, "frozen")}); err == nil {
		t.Error("Save on a frozen server succeeded")
	}
	if _, err := s.Query(ctx, []nostr.Filter{{}}, func([]byte) error { return nil }); err == nil {
		t.Error("Query on a frozen server succeeded")
	}
	if _, _, err := s.Count(ctx, []nostr.Filter{{}}); err == nil {
		t.Error("Count on a frozen server succeeded")
	}
	if _, err := s.Has(ctx, signedItem(t, sk, 1, now, "x").Event.ID); err == nil {
		t.Error("Has on a frozen server succeeded")
	}
	thaw()

	after := signedItem(t, sk, 1, now, "after")
	if res, err := s.Save(ctx, []storage.Item{after}); err != nil || res[0].Outcome != storage.Stored {
		t.Fatalf("Save once the server answers again: %v, %v", res, err)
	}
	if ok, err := s.Has(ctx, after.Event.ID); !ok || err != nil {
		t.Errorf("Has after: %v, %v", ok, err)
	}
}
