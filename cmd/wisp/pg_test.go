package main

import (
	"os"
	"testing"

	"github.com/wisp-relay/wisp/internal/pgtest"
)

// pg is the PostgreSQL server of this test binary (see pgtest): the tests
// that need it skip without PostgreSQL's binaries, and fail instead when
// WISP_TEST_REQUIRE_POSTGRES=1.
var pg *pgtest.Server

func TestMain(m *testing.M) {
	pg = pgtest.Start()
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}
