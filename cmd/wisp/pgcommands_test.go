package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"

	"github.com/wisp-relay/wisp/internal/wstest"
)

// withPassword puts a password in a test database's URL: the test server
// trusts loopback and ignores it, so tests can check that no output shows it.
func withPassword(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "secret")
	return u.String()
}

// exportedIDs are the ids of wisp export's output, sorted.
func exportedIDs(t *testing.T, out string) []string {
	t.Helper()
	var ids []string
	for line := range strings.Lines(out) {
		var ev nostr.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("export wrote %q: %v", line, err)
		}
		if !ev.CheckID() {
			t.Fatalf("export wrote an event whose id does not match: %s", line)
		}
		ids = append(ids, ev.ID)
	}
	slices.Sort(ids)
	return ids
}

// The documented way from SQLite to PostgreSQL (docs/scale-out.md):
// wisp export from the SQLite data directory, piped into wisp import with
// WISP_DATABASE_URL; every event is there after, and the commands work on
// the PostgreSQL database.
func TestMoveFromSQLiteToPostgres(t *testing.T) {
	dbURL := withPassword(t, pg.Database(t))
	evs := signedEvents(t, 400)
	k := wstest.NewKey(t)
	profile := k.SignAt(t, 0, wstest.Now()-10, `{"name":"moved"}`)
	evs = append(evs, profile, k.SignAt(t, 30023, wstest.Now()-5, "a long note about relays", nostr.Tag{"d", "post"}))
	var file bytes.Buffer
	for _, ev := range evs {
		b, _ := json.Marshal(ev)
		file.Write(b)
		file.WriteByte('\n')
	}
	in := filepath.Join(t.TempDir(), "in.jsonl")
	if err := os.WriteFile(in, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	sqliteEnv := []string{"WISP_DATA_DIR=" + t.TempDir()}
	pgEnv := []string{"WISP_DATA_DIR=" + t.TempDir(), "WISP_DATABASE_URL=" + dbURL}
	runOK(t, sqliteEnv, "import", in)
	fromSQLite, _ := runOK(t, sqliteEnv, "export")
	want := exportedIDs(t, fromSQLite)
	if len(want) != len(evs) {
		t.Fatalf("SQLite holds %d events, want %d", len(want), len(evs))
	}

	out, _ := runOKFrom(t, strings.NewReader(fromSQLite), pgEnv, "import", "-")
	if wantSaid := fmt.Sprintf("%d stored, 0 duplicate, 0 rejected, 0 malformed", len(evs)); !strings.Contains(out, wantSaid) {
		t.Errorf("import into PostgreSQL said %q, want %q", out, wantSaid)
	}
	fromPG, _ := runOK(t, pgEnv, "export")
	if got := exportedIDs(t, fromPG); !slices.Equal(got, want) {
		t.Errorf("PostgreSQL holds %d events after the move, want the %d of SQLite", len(got), len(want))
	}

	stats, _ := runOK(t, pgEnv, "stats")
	for _, s := range []string{"events      402", "pg_database_size", "kinds 1, 30023"} {
		if !strings.Contains(stats, s) {
			t.Errorf("wisp stats on PostgreSQL does not say %q:\n%s", s, stats)
		}
	}
	if strings.Contains(stats, "secret") {
		t.Errorf("wisp stats shows the database password:\n%s", stats)
	}
	scan, _ := runOK(t, pgEnv, "scan", `{"search":"relays"}`)
	if got := exportedIDs(t, scan); len(got) != 1 || got[0] != evs[len(evs)-1].ID {
		t.Errorf("wisp scan with a search on PostgreSQL: %v", got)
	}
	runOK(t, pgEnv, "delete", "--filter", fmt.Sprintf(`{"authors":[%q]}`, k.PK), "--yes")
	if got, _ := runOK(t, pgEnv, "scan", "--count", fmt.Sprintf(`{"authors":[%q]}`, k.PK)); strings.TrimSpace(got) != "0" {
		t.Errorf("wisp scan --count after wisp delete on PostgreSQL: %q, want 0", got)
	}
	code, _ := runOK(t, pgEnv, "invite")
	if len(strings.TrimSpace(code)) < 8 {
		t.Errorf("wisp invite on PostgreSQL printed %q", code)
	}

	_, stderr, exit := runArgsEnv(t, pgEnv, "backup", filepath.Join(t.TempDir(), "copy.db"))
	if exit == 0 || !strings.Contains(stderr, "pg_dump") {
		t.Errorf("wisp backup on PostgreSQL: exit %d, %q; want a failure that names pg_dump", exit, stderr)
	}
}

// A wrong WISP_DATABASE_URL or a read URL without it is refused at start,
// naming the variable and never showing the password.
func TestDatabaseURLValidation(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"WISP_DATABASE_URL=mysql://u:secret@h/db"}, "WISP_DATABASE_URL"},
		{[]string{"WISP_DATABASE_READ_URL=postgres://u:secret@h/db"}, "needs WISP_DATABASE_URL"},
		{[]string{"WISP_DATABASE_URL=postgres://h/db", "WISP_DATABASE_READ_URL=http://u:secret@h/db"}, "WISP_DATABASE_READ_URL"},
		{[]string{"WISP_DATABASE_URL=postgres://h/db", "WISP_DATABASE_MAX_CONNS=0"}, "WISP_DATABASE_MAX_CONNS"},
	} {
		_, err := loadConfig(tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%v: %v, want an error naming %s without the password", tc.env, err, tc.want)
		}
	}
	cfg, err := loadConfig([]string{"WISP_DATABASE_URL=postgresql://wisp:secret@db:5432/wisp", "WISP_DATABASE_READ_URL=postgres://wisp@replica/wisp"})
	if err != nil || !cfg.usesPostgres() {
		t.Fatalf("a postgresql:// URL and a read URL: %v", err)
	}
}

// On PostgreSQL, wisp serve's metrics name the engine and the database
// size, and wisp health checks the relay and that the database is a
// primary.
func TestServeOnPostgresOperator(t *testing.T) {
	dbURL := withPassword(t, pg.Database(t))
	addr, _, logs := startWisp(t, "WISP_DATABASE_URL="+dbURL, "WISP_METRICS_TOKEN=pg-token")
	c := dialWisp(t, addr)
	for _, ev := range signedEvents(t, 6) { // kinds 1 and 7, three each
		if !c.publish(ev) {
			t.Fatal("event refused")
		}
	}
	// The dashboard counts the kinds and reads the size from PostgreSQL.
	dashboardData(t, addr, "pg-token", func(b []byte) bool {
		var d struct {
			EventsStored int64 `json:"events_stored"`
			Kinds        []struct {
				Kind   int   `json:"kind"`
				Events int64 `json:"events"`
			} `json:"kinds"`
			Samples []struct {
				DBBytes int64 `json:"db_bytes"`
			} `json:"samples"`
		}
		if json.Unmarshal(b, &d) != nil || len(d.Samples) == 0 {
			return false
		}
		return d.EventsStored == 6 && len(d.Kinds) == 2 && d.Kinds[0].Events == 3 && d.Kinds[1].Events == 3 &&
			d.Samples[len(d.Samples)-1].DBBytes > 0
	})
	fams, status := scrapeMetrics(t, addr, "pg-token")
	if status != 200 {
		t.Fatalf("/metrics: HTTP %d", status)
	}
	if v := metricValue(fams, "wisp_database_bytes", "file", "db"); v <= 0 {
		t.Errorf("wisp_database_bytes{file=db} = %v on PostgreSQL, want its size", v)
	}
	if v := metricValue(fams, "wisp_build_info", "engine", "postgres"); v != 1 {
		t.Errorf("wisp_build_info{engine=postgres} = %v, want 1", v)
	}
	if strings.Contains(logs.String(), "secret") {
		t.Errorf("the log shows the database password")
	}
	healthEnv := []string{"WISP_DATABASE_URL=" + dbURL, "WISP_LISTEN=" + addr}
	if out, stderr, code := runArgsEnv(t, healthEnv, "health"); code != 0 || !strings.Contains(out, "accepts writes") {
		t.Errorf("wisp health on PostgreSQL: exit %d, %q %q", code, out, stderr)
	}
}

// wisp sync works with PostgreSQL on either side: a PostgreSQL database
// reconciled with a relay on SQLite (both ways, by negentropy), then a
// relay serving that PostgreSQL database synced down into SQLite.
func TestSyncWithPostgres(t *testing.T) {
	dbURL := pg.Database(t)
	evs := signedEvents(t, 120)
	sqliteAddr, _, _ := startWisp(t)
	c := dialWisp(t, sqliteAddr)
	for _, ev := range evs[20:] {
		if !c.publish(ev) {
			t.Fatal("event refused")
		}
	}
	pgEnv := []string{"WISP_DATA_DIR=" + t.TempDir(), "WISP_DATABASE_URL=" + dbURL}
	var file bytes.Buffer
	for _, ev := range evs[:40] { // 20 only in PostgreSQL, 20 on both
		b, _ := json.Marshal(ev)
		file.Write(b)
		file.WriteByte('\n')
	}
	runOKFrom(t, &file, pgEnv, "import")
	out, _ := runOK(t, pgEnv, "sync", "ws://"+sqliteAddr, "--dir", "both")
	for _, want := range []string{
		" by negentropy",
		": 40 events here matched; only here 20, only there 80\n",
		"  down: 80 received: 80 stored, 0 duplicate, 0 rejected\n",
		"  up: 20 accepted, 0 refused by the remote relay\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("sync of PostgreSQL with a SQLite relay:\n%s\nlacks %q", out, want)
		}
	}

	pgAddr, _, _ := startWisp(t, "WISP_DATABASE_URL="+dbURL)
	sqliteEnv := []string{"WISP_DATA_DIR=" + t.TempDir()}
	out, _ = runOK(t, sqliteEnv, "sync", "ws://"+pgAddr)
	if want := "  down: 120 received: 120 stored, 0 duplicate, 0 rejected\n"; !strings.Contains(out, want) {
		t.Errorf("sync down from a relay on PostgreSQL:\n%s\nlacks %q", out, want)
	}
	fromSQLite, _ := runOK(t, sqliteEnv, "export")
	fromPG, _ := runOK(t, pgEnv, "export")
	if a, b := exportedIDs(t, fromSQLite), exportedIDs(t, fromPG); len(a) != len(evs) || !slices.Equal(a, b) {
		t.Errorf("after both syncs SQLite holds %d events and PostgreSQL %d, want the same %d", len(a), len(b), len(evs))
	}
}

// WISP_DATABASE_READ_URL sends a node's stored queries to the replica and
// its writes to the primary. The "replica" here is a database of its own
// holding another event, so that a REQ shows where it was answered from
// (storage/postgres tests a real streaming replica).
func TestReadURLAnswersQueries(t *testing.T) {
	primary, replica := pg.Database(t), pg.Database(t)
	onReplica := signedEvents(t, 1)[0]
	b, _ := json.Marshal(onReplica)
	runOKFrom(t, bytes.NewReader(append(b, '\n')), []string{"WISP_DATA_DIR=" + t.TempDir(), "WISP_DATABASE_URL=" + replica}, "import", "-")

	addr, _, _ := startWisp(t, "WISP_DATABASE_URL="+primary, "WISP_DATABASE_READ_URL="+replica)
	k := wstest.NewKey(t)
	published := k.Sign(t, 1)
	c := wstest.Dial(t, "ws://"+addr)
	c.MustPublish(published)
	if got := wstest.IDs(c.Events(nostr.Filter{Kinds: []int{1, 7}})); !slices.Equal(got, []string{onReplica.ID}) {
		t.Errorf("REQ answered %v, want the replica's event %s only", got, onReplica.ID)
	}
	out, _ := runOK(t, []string{"WISP_DATA_DIR=" + t.TempDir(), "WISP_DATABASE_URL=" + primary}, "export")
	if got := exportedIDs(t, out); !slices.Equal(got, []string{published.ID}) {
		t.Errorf("the primary holds %v, want the published event %s", got, published.ID)
	}
}
