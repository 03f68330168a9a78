package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// startWisp runs the whole command (run) on a free port with a fresh data
// directory and extra WISP_ settings, and stops it when the test ends.
func startWisp(t *testing.T, env ...string) (addr, dir string, logs *lockedBuffer) {
	t.Helper()
	dir = t.TempDir()
	addr, logs, _ = startWispIn(t, dir, env...)
	return addr, dir, logs
}

// startWispIn is startWisp on the data directory dir; stop stops it (the
// test's end does too, if it was not called).
func startWispIn(t *testing.T, dir string, env ...string) (addr string, logs *lockedBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &lockedBuffer{}
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	environ := append([]string{"WISP_LISTEN=127.0.0.1:0", "WISP_DATA_DIR=" + dir}, env...)
	go func() { done <- run(ctx, nil, environ, nil, io.Discard, logs, func(a net.Addr) { addrc <- a }) }()
	select {
	case a := <-addrc:
		addr = a.String()
	case err := <-done:
		cancel()
		t.Fatalf("wisp stopped before listening: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("wisp did not start\n%s", logs)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("wisp did not stop")
			}
			if t.Failed() {
				t.Logf("wisp log:\n%s", logs)
			}
		})
	}
	t.Cleanup(stop)
	return addr, logs, stop
}

// wsClient publishes events and reads OKs on one connection.
type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialWisp(t *testing.T, addr string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return &wsClient{t, ws}
}

func (c *wsClient) send(v ...any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *wsClient) next() []json.RawMessage {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	var m []json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatal(err)
	}
	return m
}

// publish sends ev and reports whether it was answered OK true.
func (c *wsClient) publish(ev *nostr.Event) bool {
	c.t.Helper()
	c.send("EVENT", ev)
	m := c.next()
	var ok bool
	if len(m) != 4 || string(m[0]) != `"OK"` || json.Unmarshal(m[2], &ok) != nil {
		c.t.Fatalf("want OK, got %s", m)
	}
	return ok
}

func signed(t *testing.T, sk string, kind int, createdAt int64, content string, tags ...nostr.Tag) *nostr.Event {
	t.Helper()
	ev := &nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(createdAt), Content: content, Tags: nostr.Tags(tags)}
	if ev.Tags == nil {
		ev.Tags = nostr.Tags{}
	}
	if err := ev.Sign(sk); err != nil {
		t.Fatal(err)
	}
	return ev
}

// scrapeMetrics fetches /metrics and parses it as Prometheus text.
func scrapeMetrics(t *testing.T, addr, token string) (map[string]*dto.MetricFamily, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	return fams, resp.StatusCode
}

// metricValue sums the series of name whose labels include the pairs.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	sum := 0.0
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.ContainsFunc(m.GetLabel(), func(lp *dto.LabelPair) bool {
				return lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}) {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// /metrics parses as Prometheus text, needs its token, and its counters
// move with traffic.
func TestMetricsEndpoint(t *testing.T) {
	addr, _, _ := startWisp(t, "WISP_METRICS_TOKEN=t0ken", "WISP_SLOW_QUERY=0", "WISP_MAX_CONNS_PER_IP=1")
	if _, code := scrapeMetrics(t, addr, ""); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without the token: %d", code)
	}
	if _, code := scrapeMetrics(t, addr, "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("/metrics with a wrong token: %d", code)
	}
	before, _ := scrapeMetrics(t, addr, "t0ken")

	c := dialWisp(t, addr)
	sk := nostr.GeneratePrivateKey()
	var evs []*nostr.Event
	for i := range 5 {
		ev := signed(t, sk, 1, time.Now().Unix()-int64(i), fmt.Sprint("metrics ", i))
		evs = append(evs, ev)
		if !c.publish(ev) {
			t.Fatal("event refused")
		}
	}
	c.publish(evs[0]) // duplicate
	bad := signed(t, sk, 1, time.Now().Unix(), "bad")
	bad.Sig = strings.Repeat("00", 64)
	if c.publish(bad) {
		t.Fatal("bad signature accepted")
	}
	c.send("REQ", "q", nostr.Filter{Kinds: []int{1}})
	for {
		if m := c.next(); string(m[0]) == `"EOSE"` {
			break
		}
	}
	c.send("COUNT", "n", nostr.Filter{})
	c.next()
	// Refusals other than EVENTs: a COUNT of private messages, a broken
	// NEG-OPEN, and a second connection past the per-IP cap.
	c.send("COUNT", "dm", nostr.Filter{Kinds: []int{4}})
	if m := c.next(); string(m[0]) != `"CLOSED"` {
		t.Fatalf("COUNT of private messages: %s", m)
	}
	c.send("NEG-OPEN", "neg")
	if m := c.next(); string(m[0]) != `"NEG-ERR"` {
		t.Fatalf("broken NEG-OPEN: %s", m)
	}
	if ws, resp, err := websocket.Dial(t.Context(), "ws://"+addr, nil); err == nil {
		ws.CloseNow()
		t.Fatal("a second connection from one IP was let in with WISP_MAX_CONNS_PER_IP=1")
	} else if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second connection: %v %v", resp, err)
	}

	// The writer counts a message once written, maybe after the client
	// read it: wait for the last one.
	var after map[string]*dto.MetricFamily
	for deadline := time.Now().Add(10 * time.Second); ; {
		after, _ = scrapeMetrics(t, addr, "t0ken")
		if metricValue(after, "wisp_messages_sent_total", "verb", "NEG-ERR") >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	moved := func(name string, want float64, labels ...string) {
		t.Helper()
		if d := metricValue(after, name, labels...) - max(metricValue(before, name, labels...), 0); d != want {
			t.Errorf("%s%v moved by %v, want %v", name, labels, d, want)
		}
	}
	moved("wisp_messages_received_total", 7, "verb", "EVENT")
	moved("wisp_messages_received_total", 1, "verb", "REQ")
	moved("wisp_messages_received_total", 2, "verb", "COUNT")
	moved("wisp_messages_sent_total", 7, "verb", "OK")
	moved("wisp_messages_sent_total", 5, "verb", "EVENT")
	moved("wisp_messages_sent_total", 1, "verb", "EOSE")
	moved("wisp_messages_sent_total", 1, "verb", "COUNT")
	moved("wisp_events_total", 5, "outcome", "stored")
	moved("wisp_events_total", 1, "outcome", "duplicate")
	moved("wisp_events_total", 1, "outcome", "rejected", "prefix", "invalid")
	moved("wisp_write_batch_events", 5)
	moved("wisp_write_commit_seconds", 5)
	moved("wisp_query_seconds", 1, "kind", "req", "outcome", "ok")
	moved("wisp_query_seconds", 1, "kind", "count", "outcome", "ok")
	moved("wisp_refused_total", 1, "what", "COUNT", "prefix", "restricted")
	moved("wisp_refused_total", 1, "what", "NEG", "prefix", "invalid")
	moved("wisp_refused_total", 1, "what", "connection", "prefix", "rate-limited")
	moved("wisp_refused_total", 0, "what", "REQ", "prefix", "blocked")
	if got := metricValue(after, "wisp_build_info", "version", version, "verifier", verifier, "engine", "sqlite"); got != 1 {
		t.Errorf("wisp_build_info{version=%q,verifier=%q,engine=\"sqlite\"} = %v, want 1", version, verifier, got)
	}
	for name, want := range map[string]float64{"wisp_connections_open": 1, "wisp_subscriptions_open": 1, "wisp_database_events": 5} {
		if got := metricValue(after, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if metricValue(after, "wisp_database_bytes", "file", "db") <= 0 {
		t.Error("database size not reported")
	}
	if metricValue(after, "wisp_slow_consumer_evictions_total") != 0 {
		t.Error("evictions without slow clients")
	}
	// The relay still serves its own paths beside /metrics.
	resp, err := http.Get("http://" + addr + "/")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("front page: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, err := http.Get("http://" + addr + "/nope"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// wisp backup, run while events keep streaming in over websockets, writes a
// copy that opens and holds every event answered OK true before it began.
func TestBackupCommandDuringWrites(t *testing.T) {
	addr, dir, _ := startWisp(t)
	var (
		mu    sync.Mutex
		acked []string
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for w := range 2 {
		c := dialWisp(t, addr)
		sk := nostr.GeneratePrivateKey()
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ev := signed(t, sk, 1, time.Now().Unix(), fmt.Sprintf("writer %d event %d", w, i))
				if c.publish(ev) {
					mu.Lock()
					acked = append(acked, ev.ID)
					mu.Unlock()
				}
			}
		})
	}
	ackedNow := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(acked)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(ackedNow()) < 100 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	before := ackedNow()
	dest := filepath.Join(t.TempDir(), "backup.db")
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"backup", dest}, []string{"WISP_DATA_DIR=" + dir}, nil, &out, &errb, nil)
	if err != nil {
		t.Fatalf("wisp backup: %v\n%s", err, errb.String())
	}
	for len(ackedNow()) < len(before)+50 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if !strings.HasPrefix(out.String(), "backup written to "+dest) {
		t.Errorf("output %q", out.String())
	}
	if len(ackedNow()) <= len(before) {
		t.Error("no writes during and after the backup")
	}

	b, err := sqlite.Open(context.Background(), dest, sqlite.Options{ReadConns: 1})
	if err != nil {
		t.Fatalf("open the backup: %v", err)
	}
	defer b.Close()
	for _, id := range before {
		if ok, err := b.Has(context.Background(), id); !ok || err != nil {
			t.Fatalf("the backup misses %s, acknowledged before it began (%v)", id, err)
		}
	}
	t.Logf("%d events acknowledged before the backup, %d in all", len(before), len(ackedNow()))

	// A second backup to the same file is refused.
	if err := run(context.Background(), []string{"backup", dest}, []string{"WISP_DATA_DIR=" + dir}, nil, io.Discard, io.Discard, nil); err == nil {
		t.Error("backup overwrote a file")
	}
}

func TestBackupUsage(t *testing.T) {
	for _, args := range [][]string{{"backup"}, {"backup", "a", "b"}, {"backup", "--force"}} {
		_, errOut, code := runArgs(t, args...)
		if code != 2 || !strings.Contains(errOut, "backup takes one argument") {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
	out, _, code := runArgs(t, "backup", "--help")
	if code != 0 || !strings.Contains(out, "Usage: wisp backup <file>") {
		t.Errorf("backup --help: %d %q", code, out)
	}
}

// wisp stats prints counts by kind and the file sizes, while the relay runs.
func TestStatsCommand(t *testing.T) {
	addr, dir, _ := startWisp(t)
	c := dialWisp(t, addr)
	sk := nostr.GeneratePrivateKey()
	now := time.Now().Unix()
	for i, kind := range []int{1, 1, 1, 7, 30023} {
		var tags []nostr.Tag
		if kind == 30023 {
			tags = append(tags, nostr.Tag{"d", "x"})
		}
		if !c.publish(signed(t, sk, kind, now-int64(i), "stats", tags...)) {
			t.Fatal("refused")
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"stats"}, []string{"WISP_DATA_DIR=" + dir}, nil, &out, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{`schema version \d+\n`, `write-ahead log`, `\nevents +5\n`, `\nsearch +kinds 1, 30023\n`,
		`\nkind +events\n`, `\n1 +3\n`, `\n7 +1\n`, `\n30023 +1\n`} {
		if !regexp.MustCompile(want).MatchString(s) {
			t.Errorf("stats output lacks %q:\n%s", want, s)
		}
	}
	if _, _, code := runArgs(t, "stats", "extra"); code != 2 {
		t.Errorf("stats with an argument: exit %d", code)
	}
}

func TestParseRetention(t *testing.T) {
	rules, err := parseRetention(" 20000-29999:24h, 1:30d ,*:87600h")
	if err != nil {
		t.Fatal(err)
	}
	want := []storage.RetentionRule{{MinKind: 20000, MaxKind: 29999, MaxAge: 24 * time.Hour}, {MinKind: 1, MaxKind: 1, MaxAge: 30 * 24 * time.Hour}, {MinKind: 0, MaxKind: 65535, MaxAge: 87600 * time.Hour}}
	if !slices.Equal(rules, want) {
		t.Errorf("rules %v, want %v", rules, want)
	}
	if r, err := parseRetention(""); r != nil || err != nil {
		t.Errorf("empty: %v %v", r, err)
	}
	for _, bad := range []string{"1", "1:", "x:24h", "1:soon", "1:-1h", "1:0s", "5-2:1h", "70000:1h", "1:24h,", "-1:1h"} {
		if _, err := parseRetention(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFeatureConfig(t *testing.T) {
	cfg, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.searchKinds(), []int{1, 30023}) || cfg.SlowQuery != 500*time.Millisecond {
		t.Errorf("defaults: search %v slow %v", cfg.searchKinds(), cfg.SlowQuery)
	}
	cfg, err = loadConfig([]string{"WISP_SEARCH_KINDS=none"})
	if err != nil || cfg.searchKinds() == nil || len(cfg.searchKinds()) != 0 {
		t.Errorf("none: %v %v", cfg.searchKinds(), err)
	}
	for _, tc := range []struct{ env, want string }{
		{"WISP_SEARCH_KINDS=1,x", "WISP_SEARCH_KINDS"},
		{"WISP_SEARCH_KINDS=70000", "WISP_SEARCH_KINDS"},
		{"WISP_RETENTION=1:forever", "WISP_RETENTION"},
		{"WISP_SLOW_QUERY=-1s", "WISP_SLOW_QUERY"},
		{"WISP_METRICS_TOKEN=a b", "WISP_METRICS_TOKEN"},
	} {
		if _, err := loadConfig([]string{tc.env}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.env, err)
		}
	}
}

// Retention removes the events of the kinds and ages its rules name, and
// nothing else; the shortest rule covering a kind wins.
func TestRetentionEnforced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wisp.db")
	store, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sk := nostr.GeneratePrivateKey()
	now := time.Now()
	day := int64(24 * 3600)
	type row struct {
		kind int
		age  int64 // days
		gone bool
	}
	rows := []row{
		{7, 31, true}, {7, 29, false}, // 7:30d
		{1, 400, true}, {1, 364, false}, // 1:365d
		{6, 400, true}, {6, 364, false}, // 5-6:365d
		{5, 10, true}, {5, 8, false}, // 5:9d beats 5-6:365d
		{0, 4000, false}, {3, 4000, false}, {30023, 4000, false}, // no rule
	}
	rules, err := parseRetention("7:30d,1:365d,5-6:365d,5:9d")
	if err != nil {
		t.Fatal(err)
	}
	var items []storage.Item
	for _, r := range rows {
		var tags []nostr.Tag
		if r.kind == 30023 {
			tags = append(tags, nostr.Tag{"d", "x"})
		}
		ev := signed(t, sk, r.kind, now.Unix()-r.age*day, "old", tags...)
		raw, _ := ev.MarshalJSON()
		items = append(items, storage.Item{Event: ev, Raw: raw})
	}
	if _, err := store.Save(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	// A store with the rules enforces them as it opens.
	store, err = sqlite.Open(context.Background(), path, sqlite.Options{Upkeep: storage.Upkeep{Retention: rules}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stored := func(i int) bool {
		has, err := store.Has(context.Background(), items[i].Event.ID)
		if err != nil {
			t.Fatal(err)
		}
		return has
	}
	for i, r := range rows {
		if r.gone {
			eventually(t, fmt.Sprintf("kind %d, %d days old, to go", r.kind, r.age), func() bool { return !stored(i) })
		}
	}
	for i, r := range rows {
		if !r.gone && !stored(i) {
			t.Errorf("kind %d, %d days old: deleted, want kept", r.kind, r.age)
		}
	}
}

// The background task runs the rules while the relay serves.
func TestRetentionInBackground(t *testing.T) {
	addr, _, logs := startWisp(t, "WISP_RETENTION=7:1h", "WISP_EXPIRY_SWEEP=50ms")
	c := dialWisp(t, addr)
	sk := nostr.GeneratePrivateKey()
	old := signed(t, sk, 7, time.Now().Unix()-7200, "+")
	fresh := signed(t, sk, 7, time.Now().Unix(), "+")
	oldNote := signed(t, sk, 1, time.Now().Unix()-7200, "note")
	for _, ev := range []*nostr.Event{old, fresh, oldNote} {
		c.publish(ev)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "retention removed old events") {
		if time.Now().After(deadline) {
			t.Fatal("retention did not run")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.send("REQ", "q", nostr.Filter{Authors: []string{old.PubKey}})
	var got []string
	for {
		m := c.next()
		if string(m[0]) == `"EOSE"` {
			break
		}
		var ev nostr.Event
		json.Unmarshal(m[2], &ev)
		got = append(got, ev.ID)
	}
	slices.Sort(got)
	want := []string{fresh.ID, oldNote.ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after retention: %v, want %v", got, want)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
