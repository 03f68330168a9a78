package storagetest

import (
	"context"
	"errors"
	"testing"

	"github.com/wisp-relay/wisp/storage"
)

// testIDPrefix checks storage.PrefixLookup on engines that offer it: a
// prefix of a stored id is found, one of no stored id is not, whatever its
// length, and one of a deleted event is not.
func testIDPrefix(t *testing.T, f *fixture) {
	pl, ok := f.s.(storage.PrefixLookup)
	if !ok {
		t.Skip("engine does not look up id prefixes")
	}
	k := newKey(t)
	a := event(t, k, 1, 100, nil, "a")
	b := event(t, k, 1, 101, nil, "b")
	f.save(items(a, b))
	has := func(prefix string) bool {
		t.Helper()
		ok, err := pl.HasIDPrefix(context.Background(), prefix)
		if err != nil {
			t.Fatalf("HasIDPrefix(%q): %v", prefix, err)
		}
		return ok
	}
	for _, n := range []int{2, 8, 20, 64} {
		if !has(a.Event.ID[:n]) {
			t.Errorf("prefix of %d digits of a stored id not found", n)
		}
	}
	// Flip the last digit of an 8-digit prefix: no stored id starts so,
	// unless by chance the other event does.
	for _, id := range []string{a.Event.ID, b.Event.ID} {
		p := []byte(id[:8])
		p[7] = "10"[btoi(p[7] == '0')]
		if other := string(p); other != a.Event.ID[:8] && other != b.Event.ID[:8] && has(other) {
			t.Errorf("prefix %s found, no stored id has it", other)
		}
	}
	if has("ffffffff") && a.Event.ID[:8] != "ffffffff" && b.Event.ID[:8] != "ffffffff" {
		t.Error("prefix ffffffff found")
	}
	f.save(items(deletion(t, k, 102, []string{a.Event.ID}, nil)))
	if has(a.Event.ID[:8]) && a.Event.ID[:8] != b.Event.ID[:8] {
		t.Error("prefix of a deleted event found")
	}
	for _, bad := range []string{"", "abc", "zz", "ABCD"} {
		if _, err := pl.HasIDPrefix(context.Background(), bad); err == nil {
			t.Errorf("HasIDPrefix(%q) accepted", bad)
		}
	}
	f.close()
	if _, err := pl.HasIDPrefix(context.Background(), "abcd"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("after close: %v", err)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
