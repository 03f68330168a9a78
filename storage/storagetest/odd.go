package storagetest

import (
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// Tag values and d tags may hold any bytes a JSON string can carry (NUL,
// invalid UTF-8 decoded as is, long values): they are stored, matched and
// replaced by their exact bytes.
func testOddTagBytes(t *testing.T, f *fixture) {
	k := newKey(t)
	odd := []string{"a\x00b", "a", "\xff\xfe", "", "é", "e\u0301", strings.Repeat("x", 5000), "A"}
	var batch []storage.Item
	for i, v := range odd {
		batch = append(batch, event(t, k, 1, int64(1000+i), nostr.Tags{{"t", v}}, "x"))
	}
	d1 := event(t, k, 30000, 1000, nostr.Tags{{"d", "\x00d"}}, "v1")
	d2 := event(t, k, 30000, 1001, nostr.Tags{{"d", "\x00d"}}, "v2")
	other := event(t, k, 30000, 1000, nostr.Tags{{"d", "d"}}, "other d")
	f.save(append(batch, d1, d2, other))
	for i, v := range odd {
		f.expectIDs(filters(nostr.Filter{Tags: nostr.TagMap{"t": {v}}}), batch[i].Event.ID)
	}
	f.expectIDs(filters(nostr.Filter{Tags: nostr.TagMap{"t": {"a\x00b", "\xff\xfe", "nothing"}}}), batch[2].Event.ID, batch[0].Event.ID)
	f.expectIDs(filters(nostr.Filter{Kinds: []int{30000}}), d2.Event.ID, other.Event.ID)
	f.expectIDs(filters(nostr.Filter{Tags: nostr.TagMap{"d": {"\x00d"}}}), d2.Event.ID)
}
