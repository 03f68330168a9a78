package sqlite

import (
	"strings"
	"testing"

	"github.com/wisp-relay/wisp/storage/internal/evkey"
)

// An id prefix lookup is one seek on the id index, never a scan.
func TestIDPrefixPlan(t *testing.T) {
	s := openTestStore(t)
	for _, p := range [][]byte{{0xab, 0xcd, 0x01, 0x02}, {0xff, 0xff}} {
		plan := explain(t, s, idPrefixQuery(p))
		joined := strings.Join(plan, "\n")
		if !strings.Contains(joined, "USING COVERING INDEX sqlite_autoindex_events_1 (id>? AND id<?)") &&
			!strings.Contains(joined, "USING COVERING INDEX sqlite_autoindex_events_1 (id>?)") {
			t.Errorf("prefix %x: plan\n%s", p, joined)
		}
	}
}

func TestNextPrefix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"\x01\x02", "\x01\x03"}, {"\x01\xff", "\x02"}, {"\xff\xff", ""},
	} {
		if got := string(evkey.NextPrefix([]byte(tc.in))); got != tc.want {
			t.Errorf("evkey.NextPrefix(%x) = %x, want %x", tc.in, got, tc.want)
		}
	}
}
