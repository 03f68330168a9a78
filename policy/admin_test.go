package policy

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// node is one relay's moderation over a database another node shares.
type node struct {
	lists *Lists
	admin *Admin
}

func openNode(t *testing.T, path string) node {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l := NewLists(nil, nil, nil, nil)
	a := NewAdmin(l, st, st, nil)
	if err := a.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return node{l, a}
}

func call(t *testing.T, a *Admin, method string, params ...any) {
	t.Helper()
	raw := make([]json.RawMessage, len(params))
	for i, p := range params {
		raw[i], _ = json.Marshal(p)
	}
	if _, err := a.Call(context.Background(), "admin", method, raw); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

// A ban and a name set on one node hold on another once it refreshes,
// while its rules read the lists; a change the refreshing node makes
// itself meanwhile is never undone by a refresh.
func TestAdminRefreshFollowsAnotherNode(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wisp.db")
	a, b := openNode(t, path), openNode(t, path)
	pk, _ := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	own, _ := nostr.GetPublicKey(nostr.GeneratePrivateKey())

	call(t, a.admin, "banpubkey", pk, "spam")
	call(t, a.admin, "changerelayname", "renamed")
	if b.lists.PubkeyBanned(pk) {
		t.Fatal("ban seen before a refresh: the test proves nothing")
	}

	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() { // a relay's rules, reading all along
		for {
			select {
			case <-stop:
				return
			default:
				b.lists.PubkeyBanned(pk)
				b.lists.PubkeyAllowed(own)
				b.admin.Info(wisp.RelayInfo{})
			}
		}
	})
	var refreshes sync.WaitGroup
	refreshes.Go(func() {
		for range 20 {
			if err := b.admin.Refresh(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	call(t, b.admin, "allowpubkey", own, "its own change")
	refreshes.Wait()
	close(stop)
	readers.Wait()

	if !b.lists.PubkeyBanned(pk) {
		t.Error("the other node's ban does not hold after Refresh")
	}
	if got := b.admin.Info(wisp.RelayInfo{Name: "base"}).Name; got != "renamed" {
		t.Errorf("name after Refresh %q, want the other node's", got)
	}
	if !b.lists.PubkeyListed(own) {
		t.Error("a Refresh undid the node's own change")
	}

	call(t, a.admin, "unbanpubkey", pk)
	if err := b.admin.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if b.lists.PubkeyBanned(pk) {
		t.Error("the other node's unban does not hold after Refresh")
	}
}
