package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildWispAs builds the wisp binary at path, reporting version.
func buildWispAs(t *testing.T, path, version string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	out, err := exec.Command("go", "build", "-o", path, "-ldflags", "-X main.version="+version, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

// wispProc is a wisp serve process started from a built binary, with its
// JSON log read line by line; the log pipe is shared by any process it
// hands over to in an upgrade.
type wispProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string        // from the first "wisp listening"
	logDone chan struct{} // closed once every process writing the log ended

	mu   sync.Mutex
	text strings.Builder
	recs []map[string]any
}

// startProc starts bin serve with the environment env (beside the test's
// own non-WISP_ variables) and waits until it listens.
func startProc(t *testing.T, bin string, env ...string) *wispProc {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "WISP_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = w // a file, so that a successor inherits it and Wait does not wait for it
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	p := &wispProc{t: t, cmd: cmd, logDone: make(chan struct{})}
	go func() {
		defer close(p.logDone)
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec map[string]any
			json.Unmarshal(sc.Bytes(), &rec) //nolint:errcheck // kept as text anyway
			p.mu.Lock()
			p.text.WriteString(sc.Text() + "\n")
			if rec != nil {
				p.recs = append(p.recs, rec)
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		for _, pid := range p.pids() {
			syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // most have exited
		}
		cmd.Wait() //nolint:errcheck // killed
		select {
		case <-p.logDone:
		case <-time.After(30 * time.Second):
			t.Error("a wisp process did not end")
		}
		if t.Failed() {
			t.Logf("wisp log:\n%s", p.log())
		}
	})
	p.addr = str(p.waitLog(0, "wisp listening", nil)["addr"])
	return p
}

func str(v any) string { s, _ := v.(string); return s }

// pids are the processes that logged "wisp listening".
func (p *wispProc) pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pids []int
	for _, r := range p.recs {
		if pid, ok := r["pid"].(float64); ok && r["msg"] == "wisp listening" {
			pids = append(pids, int(pid))
		}
	}
	return pids
}

func (p *wispProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.text.String()
}

// mark is the position in the log, for waitLog to look after.
func (p *wispProc) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.recs)
}

// waitLog waits for a record with msg after mark that match accepts (nil:
// any), and returns it.
func (p *wispProc) waitLog(mark int, msg string, match func(map[string]any) bool) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p.mu.Lock()
		for _, r := range p.recs[mark:] {
			if r["msg"] == msg && (match == nil || match(r)) {
				p.mu.Unlock()
				return r
			}
		}
		p.mu.Unlock()
		select {
		case <-p.logDone:
			p.t.Fatalf("wisp ended without logging %q", msg)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("wisp did not log %q", msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// index is the position of rec in the log.
func (p *wispProc) index(rec map[string]any) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.recs {
		if fmt.Sprint(r) == fmt.Sprint(rec) {
			return i
		}
	}
	p.t.Fatalf("%v is not in the log", rec)
	return -1
}

// signal sends sig to the process started.
func (p *wispProc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("send %v: %v", sig, err)
	}
}

// writeFile writes a file the test needs.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// envLines is a config file of settings, one a line.
func envLines(settings ...string) string {
	return strings.Join(settings, "\n") + "\n"
}

// tempPath is a path in a new temporary directory.
func tempPath(t *testing.T, name string) string {
	return filepath.Join(t.TempDir(), name)
}
