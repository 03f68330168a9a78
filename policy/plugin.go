package policy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wisp-relay/wisp"
)

// Plugin is a strfry write-policy plugin: an external program that gets one
// JSON line per event on stdin and answers one JSON line on stdout. It
// speaks strfry's protocol exactly, so strfry plugins run unchanged:
//
//	in:  {"type":"new","event":{...},"receivedAt":<unix>,"sourceType":"IP4",
//	      "sourceInfo":"1.2.3.4","authed":"<pubkey, only after AUTH>"}
//	out: {"id":"<event id>","action":"accept"|"reject"|"shadowReject","msg":"..."}
//
// It fails closed: a wrong id, an unknown action, a crash or no answer
// within the timeout rejects the event with "error: internal error" and
// restarts the program. A command without spaces is a path to the program,
// which is reloaded when its modification time changes; a command with
// spaces runs through /bin/sh -c.
//
// One event is judged at a time, as strfry does; the program is started on
// the first event.
type Plugin struct {
	command string
	path    string // the file to watch, when command is a plain path
	timeout time.Duration
	log     *slog.Logger
	// restartDelay keeps a plugin that fails at once from being started for
	// every event.
	restartDelay time.Duration

	mu       sync.Mutex
	proc     *pluginProc
	modTime  time.Time
	failedAt time.Time
	closed   bool
}

// pluginProc is one run of the program.
type pluginProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan []byte   // answers read from stdout; closed at EOF
	quit   chan struct{} // closed by stop, so the readers never block
	exited chan struct{} // closed when the process was reaped
}

// Errors of a plugin run; each rejects the event and restarts the plugin.
var (
	ErrPluginTimeout = errors.New("plugin did not answer in time")
	ErrPluginExited  = errors.New("plugin exited")
	ErrPluginAnswer  = errors.New("plugin answered wrongly")
)

// maxPluginLine bounds one answer line.
const maxPluginLine = 1 << 20

// NewPlugin returns a plugin running command; timeout 0 means 5s. It starts
// nothing.
func NewPlugin(command string, timeout time.Duration, log *slog.Logger) (*Plugin, error) {
	command = strings.TrimSpace(command)
	if command == "" {
		return nil, errors.New("plugin: empty command")
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Plugin{command: command, timeout: timeout, log: log.With("plugin", command), restartDelay: 250 * time.Millisecond}
	if !strings.ContainsAny(command, " \t") {
		// A path, never looked up in $PATH.
		abs, err := filepath.Abs(command)
		if err != nil {
			return nil, fmt.Errorf("plugin: %w", err)
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("plugin: %w", err)
		}
		p.path, p.command = abs, abs
	}
	return p, nil
}

type pluginRequest struct {
	Type       string          `json:"type"`
	Event      json.RawMessage `json:"event"`
	ReceivedAt int64           `json:"receivedAt"`
	SourceType string          `json:"sourceType"`
	SourceInfo string          `json:"sourceInfo"`
	Authed     string          `json:"authed,omitempty"`
}

type pluginAnswer struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Msg    string `json:"msg"`
}

// sourceType names a source as strfry does.
func sourceType(in *wisp.Input) string {
	switch in.Source {
	case wisp.SourceImport:
		return "Import"
	case wisp.SourceStream:
		return "Stream"
	case wisp.SourceSync:
		return "Sync"
	}
	return ipFamily(in.Remote)
}

// Check asks the plugin about one event.
func (p *Plugin) Check(ctx context.Context, in *wisp.Input) wisp.Decision {
	raw := in.Raw
	if raw == nil {
		var err error
		if raw, err = json.Marshal(in.Event); err != nil {
			p.log.Error("plugin: encode event", "err", err)
			return wisp.Decision{Action: wisp.Reject, Reason: wisp.InternalError}
		}
	}
	received := in.Received
	if received.IsZero() {
		received = time.Now()
	}
	line, err := json.Marshal(pluginRequest{
		Type:       "new",
		Event:      raw,
		ReceivedAt: received.Unix(),
		SourceType: sourceType(in),
		SourceInfo: in.Remote,
		Authed:     in.Authed.First(), // strfry's protocol names one pubkey
	})
	if err != nil {
		p.log.Error("plugin: encode request", "err", err)
		return wisp.Decision{Action: wisp.Reject, Reason: wisp.InternalError}
	}
	ans, err := p.ask(ctx, append(line, '\n'))
	if err != nil {
		if ctx.Err() == nil {
			p.log.Error("plugin failed; event rejected, plugin restarts", "id", in.Event.ID, "err", err)
		}
		return wisp.Decision{Action: wisp.Reject, Reason: wisp.InternalError}
	}
	if ans.ID != in.Event.ID {
		p.fail(fmt.Errorf("answered id %q for event %s: %w", ans.ID, in.Event.ID, ErrPluginAnswer))
		return wisp.Decision{Action: wisp.Reject, Reason: wisp.InternalError}
	}
	switch ans.Action {
	case "accept":
		return wisp.Accepted
	case "shadowReject":
		return wisp.Decision{Action: wisp.ShadowReject}
	case "reject":
		msg := strings.TrimSpace(ans.Msg)
		switch {
		case msg == "":
			msg = wisp.Reason(wisp.PrefixBlocked, "rejected by the relay's write policy")
		case !wisp.HasPrefix(msg):
			msg = wisp.Reason(wisp.PrefixBlocked, msg)
		}
		return wisp.Decision{Action: wisp.Reject, Reason: msg}
	}
	p.fail(fmt.Errorf("unknown action %q: %w", ans.Action, ErrPluginAnswer))
	return wisp.Decision{Action: wisp.Reject, Reason: wisp.InternalError}
}

// fail logs err and stops the plugin, which restarts for the next event.
func (p *Plugin) fail(err error) {
	p.log.Error("plugin failed; event rejected, plugin restarts", "err", err)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
	p.failedAt = time.Now()
}

// ask sends one request line and waits for one answer line.
func (p *Plugin) ask(ctx context.Context, line []byte) (pluginAnswer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return pluginAnswer{}, errors.New("plugin closed")
	}
	if err := p.ensureLocked(); err != nil {
		return pluginAnswer{}, err
	}
	proc := p.proc
	failed := func(err error) (pluginAnswer, error) {
		p.stopLocked()
		p.failedAt = time.Now()
		return pluginAnswer{}, err
	}

	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	// A plugin that stops reading would block the write once the pipe is
	// full, so the write runs beside the timer.
	wrote := make(chan error, 1)
	go func() {
		_, err := proc.stdin.Write(line)
		wrote <- err
	}()
	select {
	case err := <-wrote:
		if err != nil {
			return failed(fmt.Errorf("write: %w (%w)", err, ErrPluginExited))
		}
	case <-proc.exited:
		return failed(ErrPluginExited)
	case <-timer.C:
		return failed(ErrPluginTimeout)
	case <-ctx.Done():
		return failed(ctx.Err())
	}
	select {
	case b, ok := <-proc.lines:
		if !ok {
			return failed(ErrPluginExited)
		}
		var ans pluginAnswer
		if err := json.Unmarshal(b, &ans); err != nil {
			return failed(fmt.Errorf("answer %q: %w", truncate(b, 200), ErrPluginAnswer))
		}
		return ans, nil
	case <-timer.C:
		return failed(ErrPluginTimeout)
	case <-ctx.Done():
		// The answer would arrive late and out of step: start afresh.
		return failed(ctx.Err())
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// ensureLocked starts the plugin if it is not running, or restarts it if
// its file changed.
func (p *Plugin) ensureLocked() error {
	var mod time.Time
	if p.path != "" {
		fi, err := os.Stat(p.path)
		if err != nil {
			p.stopLocked()
			return fmt.Errorf("plugin file: %w", err)
		}
		mod = fi.ModTime()
		if p.proc != nil && !mod.Equal(p.modTime) {
			p.log.Info("plugin file changed, reloading")
			p.stopLocked()
			p.failedAt = time.Time{}
		}
	}
	if p.proc != nil {
		select {
		case <-p.proc.exited:
			p.stopLocked()
			p.failedAt = time.Now()
		default:
			return nil
		}
	}
	if wait := p.restartDelay - time.Since(p.failedAt); wait > 0 {
		return fmt.Errorf("plugin failed %s ago; restarting after %s", time.Since(p.failedAt).Round(time.Millisecond), p.restartDelay)
	}
	proc, err := startPlugin(p.command, p.path != "", p.log)
	// A program file just written may still be open for writing in a child
	// another goroutine forked meanwhile (ETXTBSY); that passes at once.
	for i := 0; err != nil && isTextBusy(err) && i < 5; i++ {
		time.Sleep(20 * time.Millisecond)
		proc, err = startPlugin(p.command, p.path != "", p.log)
	}
	if err != nil {
		p.failedAt = time.Now()
		return err
	}
	p.proc, p.modTime = proc, mod
	p.log.Info("plugin started", "pid", proc.cmd.Process.Pid)
	return nil
}

func startPlugin(command string, plainPath bool, log *slog.Logger) (*pluginProc, error) {
	var cmd *exec.Cmd
	if plainPath {
		cmd = exec.Command(command)
	} else {
		cmd = exec.Command("/bin/sh", "-c", command)
	}
	setProcessGroup(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("plugin stdin: %w", err)
	}
	// Own pipes rather than StdoutPipe: Wait must not close them while the
	// readers still read.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("plugin stdout: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("plugin stderr: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		return nil, fmt.Errorf("start plugin: %w", err)
	}
	outW.Close()
	errW.Close()
	proc := &pluginProc{
		cmd:    cmd,
		stdin:  stdin,
		lines:  make(chan []byte),
		quit:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	go func() {
		defer close(proc.lines)
		defer outR.Close()
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 0, 4096), maxPluginLine)
		for sc.Scan() {
			b := append([]byte(nil), sc.Bytes()...)
			if len(strings.TrimSpace(string(b))) == 0 {
				continue
			}
			select {
			case proc.lines <- b:
			case <-proc.quit:
				return
			}
		}
	}()
	go func() {
		defer errR.Close()
		sc := bufio.NewScanner(errR)
		for sc.Scan() {
			log.Info("plugin says", "line", sc.Text())
		}
	}()
	go func() {
		err := cmd.Wait()
		if err != nil {
			log.Debug("plugin exited", "err", err)
		}
		close(proc.exited)
	}()
	return proc, nil
}

// stopLocked kills the running plugin, if any, and forgets it.
func (p *Plugin) stopLocked() {
	proc := p.proc
	if proc == nil {
		return
	}
	p.proc = nil
	close(proc.quit)
	proc.stdin.Close()
	killProcessGroup(proc.cmd)
	select {
	case <-proc.exited:
	case <-time.After(5 * time.Second):
		p.log.Warn("plugin did not exit after kill")
	}
}

// Close stops the plugin for good.
func (p *Plugin) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.stopLocked()
	return nil
}
