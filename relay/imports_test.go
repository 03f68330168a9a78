package relay_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The relay works over storage.Store alone: it links no database driver
// and no engine, so that an engine is the binary's choice (cmd/wisp).
func TestRelayImportsNoDatabase(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the relay's imports")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/wisp-relay/wisp/relay").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	banned := []string{
		"database/sql",
		"github.com/jackc/",
		"github.com/mattn/go-sqlite3",
		"modernc.org/sqlite",
		"github.com/lib/pq",
		"github.com/wisp-relay/wisp/storage/sqlite",
		"github.com/wisp-relay/wisp/storage/postgres",
	}
	for dep := range strings.FieldsSeq(string(out)) {
		for _, b := range banned {
			if dep == b || strings.HasPrefix(dep, b) && (strings.HasSuffix(b, "/") || strings.HasPrefix(dep, b+"/")) {
				t.Errorf("relay imports %s", dep)
			}
		}
	}
}
