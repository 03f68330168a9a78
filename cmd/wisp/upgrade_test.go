package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wisp-relay/wisp/internal/wstest"
)

// traffic is what clients that keep connecting and publishing saw.
type traffic struct {
	mu        sync.Mutex
	okIDs     []string       // answered OK true
	refused   map[string]int // OK false, by reason
	dialErrs  []string       // connections that failed
	goneAway  int            // connections the relay closed with 1001
	connected int
}

func (tr *traffic) acked() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.okIDs)
}

// publishLoop connects to url again and again until ctx ends, publishing
// three events on each connection, one at a time, and notes what it saw.
func (tr *traffic) publishLoop(ctx context.Context, t *testing.T, url string, k wstest.Key) {
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ws, resp, err := websocket.Dial(dctx, url, nil)
		cancel()
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			tr.mu.Lock()
			tr.dialErrs = append(tr.dialErrs, fmt.Sprintf("HTTP %d: %v", status, err))
			tr.mu.Unlock()
			continue
		}
		tr.mu.Lock()
		tr.connected++
		tr.mu.Unlock()
		tr.publishSome(ctx, t, ws, k)
		ws.Close(websocket.StatusNormalClosure, "") //nolint:errcheck // may be closed already
	}
}

func (tr *traffic) publishSome(ctx context.Context, t *testing.T, ws *websocket.Conn, k wstest.Key) {
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 3 {
		if ctx.Err() != nil {
			return
		}
		ev := k.Sign(t, 1)
		b, _ := json.Marshal([]any{"EVENT", ev})
		if ws.Write(rctx, websocket.MessageText, b) != nil {
			return
		}
		_, msg, err := ws.Read(rctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusGoingAway {
				tr.mu.Lock()
				tr.goneAway++
				tr.mu.Unlock()
			}
			return // unanswered: the client would send it again
		}
		var ok []any
		if json.Unmarshal(msg, &ok) != nil || len(ok) != 4 || ok[0] != "OK" || ok[1] != ev.ID {
			t.Errorf("want OK for %s, got %s", ev.ID, msg)
			return
		}
		tr.mu.Lock()
		if ok[2] == true {
			tr.okIDs = append(tr.okIDs, ev.ID)
		} else {
			tr.refused[fmt.Sprint(ok[3])]++
		}
		tr.mu.Unlock()
	}
}

// subscribe opens a live subscription at url and returns how the
// connection ends.
func subscribe(t *testing.T, url string) <-chan error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	ws.SetReadLimit(1 << 20)
	if err := ws.Write(ctx, websocket.MessageText, []byte(`["REQ","live",{"kinds":[1],"limit":0}]`)); err != nil {
		t.Fatal(err)
	}
	end := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				end <- err
				return
			}
		}
	}()
	return end
}

// nip11Version is the version the relay at addr reports.
func nip11Version(t *testing.T, addr string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Header.Set("Accept", "application/nostr+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("NIP-11: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var doc struct{ Software, Version string }
	json.Unmarshal(b, &doc) //nolint:errcheck // checked by the caller
	return doc.Version
}

// notifySocket is a stand-in for systemd's notification socket: it keeps
// what wisp sends it.
func notifySocket(t *testing.T) (path string, got func() []string) {
	path = filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var mu sync.Mutex
	var msgs []string
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			msgs = append(msgs, string(buf[:n]))
			mu.Unlock()
		}
	}()
	return path, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), msgs...)
	}
}

// A new binary takes over from the running wisp serve (SIGUSR2) while
// clients keep connecting and publishing: no connection is refused, every
// event answered OK true by either process is stored, the old process
// closes its connections with 1001 and exits 0, and systemd is told the
// new main pid.
func TestUpgradeKeepsClientsAndEvents(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "wisp")
	buildWispAs(t, bin, "1.0.0-old")
	next := filepath.Join(t.TempDir(), "wisp")
	buildWispAs(t, next, "2.0.0-new")
	data := filepath.Join(dir, "data")
	sock, notified := notifySocket(t)
	p := startProc(t, bin, "WISP_LISTEN=127.0.0.1:0", "WISP_DATA_DIR="+data,
		"WISP_MAX_CONNS_PER_IP=0", "NOTIFY_SOCKET="+sock)
	if v := nip11Version(t, p.addr); !strings.HasPrefix(v, "1.0.0-old") {
		t.Fatalf("version %q before the upgrade", v)
	}

	tr := &traffic{refused: map[string]int{}}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		k := wstest.NewKey(t)
		wg.Go(func() { tr.publishLoop(ctx, t, "ws://"+p.addr, k) })
	}
	defer func() { stop(); wg.Wait() }()
	wstest.Eventually(t, "events accepted by the old process", func() bool { return tr.acked() >= 40 })

	// A binary that cannot start leaves the old process serving.
	broken := filepath.Join(dir, "wisp.broken")
	writeFile(t, broken, "#!/bin/sh\necho 'not wisp' >&2\nexit 3\n")
	os.Chmod(broken, 0o755) //nolint:errcheck // the start fails either way
	if err := os.Rename(broken, bin); err != nil {
		t.Fatal(err)
	}
	mark := p.mark()
	p.signal(syscall.SIGUSR2)
	p.waitLog(mark, "upgrade failed; still serving", nil)
	before := tr.acked()
	wstest.Eventually(t, "the old process serving after a failed upgrade", func() bool { return tr.acked() >= before+20 })

	// A subscriber of the old process, to see how it is let go.
	subEnd := subscribe(t, "ws://"+p.addr)
	// The real new binary, installed as a package manager would.
	if err := os.Rename(next, bin); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	mark = p.mark()
	p.signal(syscall.SIGUSR2)
	rec := p.waitLog(mark, "wisp listening", func(r map[string]any) bool { return r["took_over_from"] != nil })
	newPID := int(rec["pid"].(float64))
	// The two never write at once: the new one opened the database after
	// the old one had closed it.
	closed := p.waitLog(mark, "upgrade: database closed; the new wisp serve takes over", nil)
	if p.index(closed) > p.index(rec) {
		t.Error("the new process served before the old one closed the database")
	}
	if str(rec["addr"]) != p.addr {
		t.Errorf("the new process listens on %v, want %s", rec["addr"], p.addr)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the old process exited with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the old process did not exit")
	}
	if v := nip11Version(t, p.addr); !strings.HasPrefix(v, "2.0.0-new") {
		t.Errorf("version %q after the upgrade", v)
	}
	if err := <-subEnd; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Errorf("the old process closed its subscriber with %v, want 1001 going away", err)
	}
	switched := tr.acked()
	wstest.Eventually(t, "events accepted by the new process", func() bool { return tr.acked() >= switched+40 })
	stop()
	wg.Wait()

	tr.mu.Lock()
	t.Logf("%d connections, %d events OK true, %d connections closed with 1001, OK false: %v",
		tr.connected, len(tr.okIDs), tr.goneAway, tr.refused)
	if len(tr.dialErrs) > 0 {
		t.Errorf("%d connections failed during the switch: %v", len(tr.dialErrs), tr.dialErrs)
	}
	for why := range tr.refused {
		if why != "error: relay is shutting down" {
			t.Errorf("refused %q", why)
		}
	}
	okIDs := tr.okIDs
	tr.mu.Unlock()

	// systemd would follow the new process: the old one said it was
	// ready, then named the new main pid.
	want := fmt.Sprintf("MAINPID=%d", newPID)
	wstest.Eventually(t, "MAINPID sent to the notification socket", func() bool {
		return slices.Contains(notified(), want)
	})
	if msgs := notified(); msgs[0] != "READY=1" || slices.Index(msgs, want) < 1 {
		t.Errorf("systemd was told %q", msgs)
	}

	// The new process stops cleanly; everything acknowledged is stored.
	mark = p.mark()
	if err := syscall.Kill(newPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitLog(mark, "wisp stopped", nil)
	select {
	case <-p.logDone:
	case <-time.After(60 * time.Second):
		t.Fatal("the new process did not exit")
	}
	assertStored(t, filepath.Join(data, "wisp.db"), okIDs)
}
