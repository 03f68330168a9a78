package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"

	"github.com/wisp-relay/wisp/storage/sqlite"
)

func runArgs(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = report(run(t.Context(), args, nil, nil, &out, &errb, nil), &errb)
	return out.String(), errb.String(), code
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		out, errOut, code := runArgs(t, args...)
		if code != 0 || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
		for _, want := range []string{"Usage:", "wisp [serve]", "wisp version", "WISP_LISTEN", "config.example.env", "README.md"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: help does not mention %q:\n%s", args, want, out)
			}
		}
	}
}

// Every command has help of its own, on standard output, that starts with
// its own usage line.
func TestCommandHelp(t *testing.T) {
	for _, cmd := range []string{"serve", "version", "stats", "scan", "delete", "export", "import", "sync", "mirror", "backup", "bench"} {
		for _, flag := range []string{"--help", "-h"} {
			out, errOut, code := runArgs(t, cmd, flag)
			if code != 0 || errOut != "" {
				t.Errorf("%s %s: exit %d, stderr %q", cmd, flag, code, errOut)
			}
			if !strings.HasPrefix(out, "Usage: wisp "+cmd) && !(cmd == "serve" && strings.HasPrefix(out, "Usage: wisp [serve]")) {
				t.Errorf("%s %s: the help does not start with the command's usage:\n%s", cmd, flag, out)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	want := fmt.Sprintf("wisp 0.1.0-dev (%s, %s)\n", verifier, runtime.Version())
	if !regexp.MustCompile(`^wisp \S+ \((btcec|libsecp256k1), go\S+\)\n$`).MatchString(want) {
		t.Fatalf("version line %q has the wrong shape", want)
	}
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		out, errOut, code := runArgs(t, args...)
		if code != 0 || errOut != "" || out != want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", args, code, out, errOut, want)
		}
	}
}

// A usage error is one line saying what is wrong, then one pointing to the
// help of the command it was made with: not the whole help.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args       []string
		want, help string
	}{
		{[]string{"bogus"}, `unknown command "bogus"`, "wisp --help"},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus", "wisp --help"},
		{[]string{"serve", "extra"}, `serve takes no arguments`, "wisp serve --help"},
		{[]string{"version", "extra"}, `version takes no arguments`, "wisp version --help"},
		{[]string{"stats", "--all"}, `stats takes no arguments`, "wisp stats --help"},
		{[]string{"scan", `{"author":["x"]}`}, `scan: filter: unknown key "author" (did you mean "authors"?)`, "wisp scan --help"},
		{[]string{"export", "--bogus"}, "export: flag provided but not defined: -bogus", "wisp export --help"},
		{[]string{"delete"}, "delete: no filter given", "wisp delete --help"},
		{[]string{"import", "a", "b"}, "import: want one file", "wisp import --help"},
		{[]string{"backup"}, "backup takes one argument", "wisp backup --help"},
	}
	for _, tt := range tests {
		out, errOut, code := runArgs(t, tt.args...)
		if code != 2 || out != "" {
			t.Errorf("%v: exit %d, stdout %q; want exit 2 and nothing on stdout", tt.args, code, out)
		}
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "wisp: "+tt.want) || lines[1] != "Run '"+tt.help+"' for usage." {
			t.Errorf("%v: stderr\n%s\nwant the error %q, then a pointer to %q, and nothing else", tt.args, errOut, tt.want, tt.help)
		}
	}
}

func TestBadConfigExits1(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(t.Context(), nil, []string{"WISP_DEFAULT_LIMIT=9999", "WISP_DATA_DIR=" + t.TempDir()}, nil, &out, &errb, nil)
	if code := report(err, &errb); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "WISP_DEFAULT_LIMIT") {
		t.Errorf("stderr %q does not name the variable", errb.String())
	}
}

func TestClientURL(t *testing.T) {
	tests := []struct{ public, addr, want string }{
		{"", "127.0.0.1:4869", "ws://127.0.0.1:4869"},
		{"", "0.0.0.0:4869", "ws://localhost:4869"},
		{"", "[::]:4869", "ws://localhost:4869"},
		{"", "[::1]:4869", "ws://[::1]:4869"},
		{"wss://relay.example.com", "0.0.0.0:4869", "wss://relay.example.com"},
	}
	for _, tt := range tests {
		addr, err := net.ResolveTCPAddr("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := clientURL(tt.public, addr); got != tt.want {
			t.Errorf("clientURL(%q, %s) = %q, want %q", tt.public, tt.addr, got, tt.want)
		}
	}
}

// lockedBuffer collects the relay's log from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Cancelling run's context (what SIGINT/SIGTERM do) in the middle of a burst
// of EVENTs loses nothing that was answered OK true.
func TestShutdownDuringBurstKeepsAcceptedEvents(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs := &lockedBuffer{}
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, []string{
			"WISP_LISTEN=127.0.0.1:0",
			"WISP_DATA_DIR=" + dir,
			"WISP_LOG_LEVEL=debug",
		}, nil, io.Discard, logs, func(a net.Addr) { addrc <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run returned before listening: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("relay did not start\n%s", logs)
	}
	if !strings.Contains(logs.String(), `msg="wisp listening" url=ws://`+addr.String()) {
		t.Errorf("no listening line with the URL in the log:\n%s", logs)
	}

	res := burst(t, "ws://"+addr.String(), cancel)

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, logs)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("run did not return after cancel\n%s", logs)
	}
	assertStored(t, filepath.Join(dir, "wisp.db"), res.okIDs)
	assertEveryEventRead(t, res, logs.String())
	if t.Failed() {
		t.Logf("relay log:\n%s", logs)
	}
}

// The real thing: a built wisp binary gets SIGTERM during a burst.
func TestSIGTERMDuringBurstKeepsAcceptedEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "wisp")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	dir := t.TempDir()
	cmd := exec.Command(bin)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "WISP_LISTEN=127.0.0.1:0", "WISP_DATA_DIR="+dir, "WISP_LOG_FORMAT=json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck // a no-op once it has exited

	// Read the JSON log; the listening line carries the bound address.
	logs := &lockedBuffer{}
	addrc := make(chan string, 1)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			var rec struct{ Msg, Addr, URL string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "wisp listening" {
				addrc <- rec.Addr
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-logDone:
		t.Fatalf("wisp exited before listening\n%s", logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("wisp did not start\n%s", logs)
	}

	res := burst(t, "ws://"+addr, func() {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("send SIGTERM: %v", err)
		}
	})

	waited := make(chan error, 1)
	go func() { <-logDone; waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("wisp exited with %v\n%s", err, logs)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("wisp did not exit after SIGTERM\n%s", logs)
	}
	assertStored(t, filepath.Join(dir, "wisp.db"), res.okIDs)
	assertEveryEventRead(t, res, logs.String())
	if t.Failed() {
		t.Logf("wisp log:\n%s", logs)
	}
}

// burstResult is what the clients of a burst saw.
type burstResult struct {
	okIDs    []string // answered OK true
	sent     int      // EVENTs written before the relay's close frame came
	answered int      // of those, answered with an OK
}

// burst sends signed kind-1 events from several concurrent connections to
// url, calls stop halfway through, and returns what the clients saw. It
// returns when the relay has closed every connection. On each connection
// the EVENTs answered must be the first ones sent, with no gap: the relay
// reads in order, and answers everything it read before its close frame.
func burst(t *testing.T, url string, stop func()) burstResult {
	t.Helper()
	const conns, perConn = 4, 75

	// Sign everything first so the burst itself is fast.
	msgs := make([][][]byte, conns)
	evIDs := make([][]string, conns)
	for c := range msgs {
		sk := nostr.GeneratePrivateKey()
		for i := range perConn {
			ev := nostr.Event{
				Kind:      1,
				CreatedAt: nostr.Now(),
				Tags:      nostr.Tags{},
				Content:   fmt.Sprintf("burst %d/%d", c, i),
			}
			if err := ev.Sign(sk); err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal([]any{"EVENT", ev})
			if err != nil {
				t.Fatal(err)
			}
			msgs[c] = append(msgs[c], b)
			evIDs[c] = append(evIDs[c], ev.ID)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var (
		sent, acked atomic.Int64
		mu          sync.Mutex
		okIDs       []string
		refusals    = map[string]int{} // OK false, by reason
		wg          sync.WaitGroup
		written     = make([]int, conns)             // EVENTs written on each connection
		answered    = make([]map[string]bool, conns) // ids answered on each
	)
	dialed := make([]*websocket.Conn, conns)
	for c := range dialed {
		ws, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		ws.SetReadLimit(1 << 20)
		dialed[c] = ws
		answered[c] = map[string]bool{}
	}

	// Each connection sends half its events, then waits: once the relay has
	// answered some, stop is called and the second half goes out while the
	// relay shuts down.
	var halfSent sync.WaitGroup
	halfSent.Add(conns)
	resume, stopped := make(chan struct{}), make(chan struct{})
	wg.Go(func() {
		markStopped := sync.OnceFunc(func() { close(stopped) })
		defer markStopped()
		defer close(resume)
		halfSent.Wait()
		for acked.Load() < 10 {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
		t.Logf("stopping with %d sent, %d answered", sent.Load(), acked.Load())
		// Before stop: the relay may close the connections at once, and
		// their readers must know that the shutdown has begun.
		markStopped()
		stop()
	})

	for c, ws := range dialed {
		wg.Go(func() {
			half := sync.OnceFunc(halfSent.Done)
			defer half()
			for i, m := range msgs[c] {
				if i == perConn/2 {
					half()
					<-resume
				}
				if ws.Write(ctx, websocket.MessageText, m) != nil {
					return // the relay is closing this connection
				}
				// A write that returned went out before the client
				// answered the relay's close frame, so the relay reads it.
				mu.Lock()
				written[c]++
				mu.Unlock()
				sent.Add(1)
			}
		})
		wg.Go(func() {
			defer ws.CloseNow() //nolint:errcheck // already closed by the relay
			for {
				_, b, err := ws.Read(ctx)
				if err != nil {
					select {
					case <-stopped:
					default:
						t.Errorf("connection %d ended before the shutdown: %v", c, err)
						return
					}
					if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway {
						t.Errorf("connection %d ended with %v, want close status going away", c, err)
					}
					return
				}
				var msg []json.RawMessage
				if err := json.Unmarshal(b, &msg); err != nil || len(msg) == 0 {
					t.Errorf("bad message from relay: %s", b)
					continue
				}
				var verb, id string
				var accepted bool
				json.Unmarshal(msg[0], &verb) //nolint:errcheck // checked by the switch
				if verb != "OK" {
					continue
				}
				if len(msg) != 4 || json.Unmarshal(msg[1], &id) != nil || json.Unmarshal(msg[2], &accepted) != nil {
					t.Errorf("bad OK from relay: %s", b)
					continue
				}
				acked.Add(1)
				var why string
				json.Unmarshal(msg[3], &why) //nolint:errcheck // only logged
				mu.Lock()
				if answered[c][id] {
					t.Errorf("connection %d: %s answered twice", c, id)
				}
				answered[c][id] = true
				if accepted {
					okIDs = append(okIDs, id)
				} else {
					refusals[why]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res := burstResult{okIDs: okIDs, sent: int(sent.Load())}
	for c := range conns {
		// The answered EVENTs are the first ones written.
		n := len(answered[c])
		for i, id := range evIDs[c] {
			if answered[c][id] != (i < n) {
				t.Errorf("connection %d: EVENT %d of %d written answered %v, but %d answered: not the first ones",
					c, i, written[c], answered[c][id], n)
				break
			}
		}
		res.answered += n
	}
	t.Logf("%d events sent, %d answered, %d OK true, OK false: %v", res.sent, res.answered, len(okIDs), refusals)
	if len(okIDs) == 0 {
		t.Error("no event was accepted before the shutdown")
	}
	return res
}

// afterCloseRe finds, in text or JSON log lines, how many messages a
// connection read after the relay's close frame.
var afterCloseRe = regexp.MustCompile(`after_close"?[=:](\d+)`)

// assertEveryEventRead answers: every EVENT written was either answered or,
// as the relay logs, read only after its close frame went out (the client
// sent it before it saw that frame), which RFC 6455 forbids answering.
func assertEveryEventRead(t *testing.T, res burstResult, logs string) {
	t.Helper()
	afterClose := 0
	for _, m := range afterCloseRe.FindAllStringSubmatch(logs, -1) {
		n, _ := strconv.Atoi(m[1])
		afterClose += n
	}
	if res.sent != res.answered+afterClose {
		t.Errorf("%d EVENTs written, %d answered, %d read after the close frame: %d read and never answered",
			res.sent, res.answered, afterClose, res.sent-res.answered-afterClose)
	}
	t.Logf("%d EVENTs read after the relay's close frame", afterClose)
}

// assertStored reopens the database and checks that every id is in it.
func assertStored(t *testing.T, path string, ids []string) {
	t.Helper()
	store, err := sqlite.Open(t.Context(), path, sqlite.Options{ReadConns: 1})
	if err != nil {
		t.Fatalf("reopen database: %v", err)
	}
	defer store.Close()
	missing := 0
	for _, id := range ids {
		has, err := store.Has(t.Context(), id)
		if err != nil {
			t.Fatalf("has %s: %v", id, err)
		}
		if !has {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d events answered OK true are not in the database", missing, len(ids))
	}
}
