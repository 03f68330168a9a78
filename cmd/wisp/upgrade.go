package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Zero-downtime upgrade (SIGUSR2; docs/architecture.md, "Reload and
// upgrade"). The running wisp serve starts its executable again (the file
// now at that path: the new binary) with the same arguments and
// environment, handing it four descriptors: the listening socket, the data
// directory's locked file (a flock belongs to the open file, so the lock
// passes on with it and no third serve can slip in), and two pipes. The
// new process checks its configuration and says "ready" on the first
// pipe; only then does the old one stop accepting and drain, so a new
// binary that cannot start leaves the old one serving. The old process
// holds the write end of the second pipe until it has closed the
// database; the new one waits for its end of file (which also comes if
// the old one dies) before it opens the database, so the two never write
// at once. Meanwhile connections wait in the socket's queue, which both
// share: none is refused.

// upgradeFromVar tells a process started by an upgrade the pid of the one
// it replaces. It is wisp's own, not a setting.
const upgradeFromVar = envPrefix + "UPGRADE_FROM"

// The descriptors a successor inherits, after stdin, stdout and stderr.
const (
	fdListener = 3 + iota
	fdLock
	fdReady   // the successor writes "ready <pid>" on it once it can take over
	fdRelease // end of file once the predecessor has closed the database
)

// readyTimeout bounds the wait for a new process to say it is ready.
const readyTimeout = time.Minute

// predecessor is what a process started by an upgrade inherited from the
// wisp serve it replaces.
type predecessor struct {
	pid     string
	ln      net.Listener
	lock    *dataLock
	ready   *os.File
	release *os.File
}

// inherited returns the predecessor's handover, or nil when this process
// was not started by an upgrade. withLock: the data directory's lock is
// handed on (SQLite).
func inherited(environ []string, withLock bool) (*predecessor, error) {
	pid := lookupEnv(environ, upgradeFromVar)
	if pid == "" {
		return nil, nil
	}
	lf := os.NewFile(fdListener, "listener")
	ln, err := net.FileListener(lf)
	lf.Close() // FileListener made its own copy
	if err != nil {
		return nil, fmt.Errorf("upgrade: the listening socket of wisp serve pid %s: %w", pid, err)
	}
	var lock *dataLock
	if withLock { // on PostgreSQL, nothing is locked and nothing handed on
		lock = &dataLock{f: os.NewFile(fdLock, lockFile)}
	}
	return &predecessor{
		pid:     pid,
		ln:      ln,
		lock:    lock,
		ready:   os.NewFile(fdReady, "upgrade ready"),
		release: os.NewFile(fdRelease, "upgrade release"),
	}, nil
}

// takeOver tells the predecessor that this process is ready, then waits
// until it has closed the database (or ended, however).
func (p *predecessor) takeOver(ctx context.Context) error {
	_, err := fmt.Fprintf(p.ready, "ready %d\n", os.Getpid())
	p.ready.Close()
	if err != nil {
		return fmt.Errorf("upgrade: tell wisp serve pid %s: %w", p.pid, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(io.Discard, p.release) //nolint:errcheck // any end will do
	}()
	select {
	case <-done:
		p.release.Close()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("upgrade: stopped while wisp serve pid %s drained: %w", p.pid, context.Cause(ctx))
	}
}

// successor is a new wisp serve started to take over this one.
type successor struct {
	cmd     *exec.Cmd
	ready   *os.File // read end of its "ready" pipe
	release *os.File // write end of the "release" pipe: closed once the database is
}

// startSuccessor starts exe with args and environ, handing it ln and the
// lock. Its log goes to stderr, which must be a file (it outlives us).
func startSuccessor(exe string, args, environ []string, ln net.Listener, lock *dataLock, stderr io.Writer) (*successor, error) {
	logFile, ok := stderr.(*os.File)
	if !ok {
		return nil, errors.New("upgrade: the log is not a file that a new process can inherit")
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, fmt.Errorf("upgrade: cannot hand over a %T", ln)
	}
	lf, err := tl.File()
	if err != nil {
		return nil, fmt.Errorf("upgrade: the listening socket: %w", err)
	}
	defer lf.Close() // the child has its own copy once started
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	defer readyW.Close()
	releaseR, releaseW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	defer releaseR.Close()

	cmd := exec.Command(exe, args...)
	cmd.Env = append(withoutVar(environ, upgradeFromVar), upgradeFromVar+"="+strconv.Itoa(os.Getpid()))
	cmd.Stderr = logFile
	cmd.ExtraFiles = []*os.File{lf, lock.File(), readyW, releaseR} // fdListener, fdLock, fdReady, fdRelease
	if err := cmd.Start(); err != nil {
		readyR.Close()
		releaseW.Close()
		return nil, fmt.Errorf("upgrade: start %s: %w", exe, err)
	}
	return &successor{cmd: cmd, ready: readyR, release: releaseW}, nil
}

// waitReady waits until the successor says it is ready to take over. It
// fails if the successor exits first, or does not say so in time (it is
// then killed); either way this process goes on serving.
func (s *successor) waitReady(ctx context.Context) error {
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(s.ready).ReadString('\n')
		line <- l
	}()
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case l := <-line:
		if strings.HasPrefix(l, "ready ") {
			s.ready.Close()
			return nil
		}
		// End of file: it exited (or closed the pipe) without being ready.
		err := s.cmd.Wait()
		s.discard()
		return fmt.Errorf("the new wisp serve (pid %d) ended before it was ready: %v", s.cmd.Process.Pid, err)
	case <-timer.C:
		s.kill()
		return fmt.Errorf("the new wisp serve (pid %d) was not ready within %s; stopped it", s.cmd.Process.Pid, readyTimeout)
	case <-ctx.Done():
		s.kill()
		return context.Cause(ctx)
	}
}

// kill stops a successor that is not taking over.
func (s *successor) kill() {
	s.cmd.Process.Kill() //nolint:errcheck // it may have exited
	s.cmd.Wait()         //nolint:errcheck // killed
	s.discard()
}

func (s *successor) discard() {
	s.ready.Close()
	s.release.Close()
}

// released tells the successor that the database is closed; it may open
// it. The successor is on its own from now on.
func (s *successor) released() {
	s.release.Close()
	s.cmd.Process.Release() //nolint:errcheck // nothing to free on unix
}

func withoutVar(environ []string, key string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}
