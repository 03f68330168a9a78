package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// recorder is a relay.Metrics that remembers every call.
type recorder struct {
	mu      sync.Mutex
	counts  map[string]int
	batches []int
}

func newRecorder() *recorder { return &recorder{counts: map[string]int{}} }

func (r *recorder) add(key string) {
	r.mu.Lock()
	r.counts[key]++
	r.mu.Unlock()
}

func (r *recorder) MessageIn(verb string)        { r.add("in " + verb) }
func (r *recorder) MessageOut(verb string)       { r.add("out " + verb) }
func (r *recorder) Event(outcome, prefix string) { r.add("event " + outcome + " " + prefix) }
func (r *recorder) Query(kind, outcome string, _ time.Duration) {
	r.add("query " + kind + " " + outcome)
}
func (r *recorder) Refused(what, prefix string) { r.add("refused " + what + " " + prefix) }
func (r *recorder) WriteBatch(n int, _ time.Duration, err error) {
	r.mu.Lock()
	r.batches = append(r.batches, n)
	r.mu.Unlock()
	r.add(fmt.Sprint("batch err=", err != nil))
}

func (r *recorder) get(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[key]
}

// The relay reports messages, event outcomes, batches and queries to its
// Metrics as they happen.
func TestMetricsHooks(t *testing.T) {
	rec := newRecorder()
	tr := startRelay(t, func(cfg *relay.Config) { cfg.Metrics = rec })
	c := dial(t, tr.url)
	k := newKey(t)
	ev := k.sign(t, 1, now(), "hello")
	c.mustPublish(ev)
	if res := c.publish(ev); !res.ok {
		t.Fatalf("duplicate refused: %s", res.msg)
	}
	bad := k.sign(t, 1, now(), "bad sig")
	bad.Sig = strings.Repeat("0", 128)
	if res := c.publish(bad); res.ok {
		t.Fatal("bad signature accepted")
	}
	c.mustPublish(k.sign(t, 20001, now(), "ephemeral"))
	c.query("q", nostr.Filter{Kinds: []int{1}})
	c.count("n", nostr.Filter{})
	c.sendRaw(`["NONSENSE"]`)
	c.expectMsg("NOTICE")

	want := map[string]int{
		"in EVENT": 4, "in REQ": 1, "in CLOSE": 1, "in COUNT": 1, "in invalid": 1,
		"out OK": 4, "out EVENT": 1, "out EOSE": 1, "out COUNT": 1, "out NOTICE": 1,
		"event stored ": 1, "event duplicate ": 1, "event rejected invalid": 1, "event ephemeral ": 1,
		"query req ok": 1, "query count ok": 1, "batch err=false": 1,
	}
	eventually(t, "metrics", func() bool {
		for k, v := range want {
			if rec.get(k) != v {
				return false
			}
		}
		return true
	})
	if t.Failed() {
		t.Logf("recorded %v", rec.counts)
	}
}

// lockedLog collects the relay's log lines.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedLog) lines(msg string) []string {
	var out []string
	for line := range strings.SplitSeq(l.String(), "\n") {
		if strings.Contains(line, `msg="`+msg+`"`) {
			out = append(out, line)
		}
	}
	return out
}

func logTo(w io.Writer) func(*relay.Config) {
	return func(cfg *relay.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
}

// One line per connection opened and one per connection closed, with why.
func TestConnectionLog(t *testing.T) {
	log := &lockedLog{}
	tr := startRelay(t, logTo(log), func(cfg *relay.Config) {
		cfg.Limits.MaxMessageBytes = 1000
	})

	// The client closes.
	c := dial(t, tr.url)
	c.query("x", nostr.Filter{})
	c.ws.Close(websocket.StatusNormalClosure, "bye")
	eventually(t, "close line", func() bool { return len(log.lines("connection closed")) == 1 })
	line := log.lines("connection closed")[0]
	for _, want := range []string{"remote=127.0.0.1", `reason="closed by client (status 1000: bye)"`, "in=2", "out=1", "duration="} {
		if !strings.Contains(line, want) {
			t.Errorf("close line %q lacks %q", line, want)
		}
	}
	if got := log.lines("connection opened"); len(got) != 1 || !strings.Contains(got[0], "remote=127.0.0.1") {
		t.Errorf("open lines %q", got)
	}

	// A message too big.
	c2 := dial(t, tr.url)
	c2.sendRaw(`["REQ","x",{"search":"` + strings.Repeat("a", 2000) + `"}]`)
	eventually(t, "second close line", func() bool { return len(log.lines("connection closed")) == 2 })
	if line := log.lines("connection closed")[1]; !strings.Contains(line, "message larger than 1000 bytes") {
		t.Errorf("close line %q", line)
	}

	// The connection drops without a close frame.
	c3 := dial(t, tr.url)
	c3.ws.CloseNow()
	eventually(t, "third close line", func() bool { return len(log.lines("connection closed")) == 3 })
	if line := log.lines("connection closed")[2]; !strings.Contains(line, "connection lost") && !strings.Contains(line, "closed by client") {
		t.Errorf("close line %q", line)
	}
}

// The relay's own reasons (here: shutdown) name themselves.
func TestConnectionLogShutdown(t *testing.T) {
	log := &lockedLog{}
	store, err := sqlite.Open(context.Background(), t.TempDir()+"/wisp.db", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg := relay.Config{Limits: relay.DefaultLimits()}
	logTo(log)(&cfg)
	r := relay.New(cfg, store)
	r.Start()
	srv := newServer(t, r)
	c := dial(t, "ws"+strings.TrimPrefix(srv, "http"))
	c.query("x", nostr.Filter{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "close line", func() bool { return len(log.lines("connection closed")) == 1 })
	if line := log.lines("connection closed")[0]; !strings.Contains(line, `reason="relay is shutting down (closed by relay, status 1001)"`) {
		t.Errorf("close line %q", line)
	}
}

// Queries at or over WISP_SLOW_QUERY are logged with their filters.
func TestSlowQueryLog(t *testing.T) {
	log := &lockedLog{}
	tr := startRelay(t, logTo(log), func(cfg *relay.Config) { cfg.SlowQuery = time.Nanosecond })
	c := dial(t, tr.url)
	k := newKey(t)
	c.query("slowsub", nostr.Filter{Authors: []string{k.pk}, Kinds: []int{1}})
	c.count("slowcount", nostr.Filter{Kinds: []int{7}})
	eventually(t, "slow query lines", func() bool { return len(log.lines("slow query")) == 2 })
	lines := log.lines("slow query")
	for _, want := range []string{"kind=req", "sub=slowsub", "took=", "results=0", `filters="[{\"kinds\":[1],\"authors\":[\"` + k.pk} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("slow query line %q lacks %q", lines[0], want)
		}
	}
	if !strings.Contains(lines[1], "kind=count") || !strings.Contains(lines[1], "sub=slowcount") {
		t.Errorf("slow count line %q", lines[1])
	}

	// The default (0) logs nothing.
	log2 := &lockedLog{}
	tr2 := startRelay(t, logTo(log2))
	c2 := dial(t, tr2.url)
	c2.query("q", nostr.Filter{})
	if got := log2.lines("slow query"); len(got) != 0 {
		t.Errorf("slow query logged with the threshold off: %q", got)
	}
}

// The front page shows how many events are stored and how many
// connections are open.
func TestFrontPageFigures(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	k := newKey(t)
	for i := range 3 {
		c.mustPublish(k.sign(t, 1, now()-int64(i), fmt.Sprint(i)))
	}
	resp, err := http.Get(tr.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"<b>3</b><span>events stored</span>", "<b>1</b><span>open connections</span>"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("front page lacks %q", want)
		}
	}
}
