package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The layering of docs/architecture.md: the protocol code never sees SQL or
// a driver, policies never see the relay, and only cmd/wisp wires concrete
// types together.
func TestImportRules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	const mod = "github.com/wisp-relay/wisp"
	rules := []struct {
		pkgs      string // go list pattern
		forbidden []string
	}{
		// The relay speaks the shared words of package wisp, never the
		// policies' code (plugins, NIP-86 admin) nor a database.
		{mod + "/relay/...", []string{"database/sql", "github.com/mattn/go-sqlite3", mod + "/storage/sqlite", "github.com/jackc/pgx/v5", mod + "/storage/postgres", "github.com/prometheus", mod + "/policy", mod + "/groups", mod + "/membership"}},
		// The shared words import nothing of wisp's.
		{mod, []string{mod + "/relay", mod + "/policy", mod + "/storage", mod + "/mirror", mod + "/metrics", mod + "/dashboard", mod + "/bench", mod + "/cmd", mod + "/groups", mod + "/membership"}},
		{mod + "/metrics/...", []string{"github.com/mattn/go-sqlite3", mod + "/storage/sqlite", "github.com/jackc/pgx/v5", mod + "/storage/postgres"}},
		// The dashboard reads the store through what cmd/wisp hands it, and
		// acts only through the relay's NIP-86 API.
		{mod + "/dashboard/...", []string{"github.com/mattn/go-sqlite3", mod + "/storage/sqlite", "github.com/jackc/pgx/v5", mod + "/storage/postgres", mod + "/policy"}},
		{mod + "/storage", []string{"database/sql", "github.com/mattn/go-sqlite3", "github.com/jackc/pgx/v5", mod + "/relay"}},
		{mod + "/policy/...", []string{mod + "/relay", "database/sql", "github.com/mattn/go-sqlite3", "github.com/jackc/pgx/v5"}},
		{mod + "/storage/...", []string{mod + "/relay", mod + "/policy"}},
		{mod + "/mirror/...", []string{"database/sql", "github.com/mattn/go-sqlite3", mod + "/storage/sqlite", "github.com/jackc/pgx/v5", mod + "/storage/postgres"}},
		// Groups meet the relay through the interfaces it declares.
		{mod + "/groups/...", []string{mod + "/relay", mod + "/policy", "database/sql", "github.com/mattn/go-sqlite3", mod + "/storage/sqlite", "github.com/jackc/pgx/v5", mod + "/storage/postgres"}},
		// Membership works on the policy's allow list, never on the relay.
		{mod + "/membership/...", []string{mod + "/relay", "database/sql", "github.com/mattn/go-sqlite3", mod + "/storage/sqlite", "github.com/jackc/pgx/v5", mod + "/storage/postgres"}},
	}
	for _, r := range rules {
		// One package at a time, so a violation names the importer.
		out, err := exec.Command("go", "list", r.pkgs).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", r.pkgs, err)
		}
		for _, pkg := range strings.Fields(string(out)) {
			deps, err := exec.Command("go", "list", "-deps", pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", pkg, err)
			}
			for _, dep := range strings.Fields(string(deps)) {
				for _, f := range r.forbidden {
					if dep == f || strings.HasPrefix(dep, f+"/") {
						t.Errorf("%s depends on %s", pkg, dep)
					}
				}
			}
		}
	}
}
