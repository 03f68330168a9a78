package relay

import (
	"context"
	"sync"
)

// maxInbox and maxInboxBytes bound the messages of one client that may
// wait for its handler before the reader stops reading (and TCP pushes
// back on the client); one message of any allowed size always fits.
const (
	maxInbox      = 16
	maxInboxBytes = 1 << 20
)

// inMsg is a message read and not yet handled.
type inMsg struct {
	data   []byte
	binary bool
}

// inbox holds the messages a connection's reader has read and its handler
// has not handled yet, in order, bounded by maxInbox and maxInboxBytes.
// The handler is a goroutine started when a message arrives and gone when
// none waits: handling (queries, JSON, signature checks) grows a
// goroutine's stack to several KiB, and the stack of a goroutine parked in
// a read never shrinks back, so the reader's stack stays shallow and an
// idle connection holds no handler. One mutex guards it, and the shutdown
// handshake that depends on it (goaway.go).
type inbox struct {
	handle func(inMsg) // runs on the handler goroutine, one message at a time
	// goneAway queues the close frame once, going away, every message
	// read is handled; called with mu held.
	goneAway func()

	mu       sync.Mutex
	msgs     []inMsg
	bytes    int  // the messages' sizes
	handling bool // a handler goroutine runs
	space    chan struct{}
	handlers sync.WaitGroup
	away     awayState
}

func newInbox(handle func(inMsg), goneAway func()) *inbox {
	return &inbox{handle: handle, goneAway: goneAway, space: make(chan struct{}, 1)}
}

// put queues m for the handler, starting it when it is not running, and
// waits while the inbox is full, until ctx is done. It reports false when
// the connection is ending. During a shutdown it drops what comes after
// the close frame, and waits for that frame once it has handed over its
// share (see goaway.go).
func (in *inbox) put(ctx context.Context, m inMsg) bool {
	in.mu.Lock()
	if in.away.dropLocked() {
		in.mu.Unlock()
		return true
	}
	in.away.holding = true
	for len(in.msgs) >= maxInbox || len(in.msgs) > 0 && in.bytes+len(m.data) > maxInboxBytes {
		in.mu.Unlock()
		select {
		case <-in.space:
		case <-ctx.Done():
			return false
		}
		in.mu.Lock()
	}
	in.msgs = append(in.msgs, m)
	in.bytes += len(m.data)
	in.away.holding = false
	if !in.handling {
		in.handling = true
		in.handlers.Add(1)
		go in.run()
	}
	wait := in.away.handedLocked()
	in.mu.Unlock()
	if wait == nil {
		return true
	}
	select {
	case <-wait:
		return true
	case <-ctx.Done():
		return false
	}
}

// run handles queued messages in order until none waits.
func (in *inbox) run() {
	defer in.handlers.Done()
	for {
		in.mu.Lock()
		if len(in.msgs) == 0 {
			in.msgs = nil // an idle connection holds no slice
			in.handling = false
			in.closeIfAnsweredLocked() // going away: all read is answered
			in.mu.Unlock()
			return
		}
		m := in.msgs[0]
		in.msgs[0] = inMsg{}
		in.msgs = in.msgs[1:]
		in.bytes -= len(m.data)
		in.mu.Unlock()
		signal(in.space)
		in.handle(m)
	}
}

// wait waits for the handler to finish what was read.
func (in *inbox) wait() { in.handlers.Wait() }
