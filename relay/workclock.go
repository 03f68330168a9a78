package relay

import (
	"context"
	"sync"
	"time"
)

// workClock is the context of a REQ's stored query: it ends after the
// query has worked for QueryTimeout, not counting the time it waits for
// the client to take its results. The store reads a big answer a page at
// a time while the connection sends it; a wall-clock deadline would cut a
// slow phone's answer short, and no deadline would let a slow query hold
// a database connection. The relay pauses the clock while the handler
// waits on the client (outbox.put).
type workClock struct {
	parent context.Context
	done   chan struct{}
	stop   func() bool // stops watching parent

	mu      sync.Mutex
	err     error
	left    time.Duration
	started time.Time   // while running
	timer   *time.Timer // while running
}

func newWorkClock(parent context.Context, budget time.Duration) *workClock {
	w := &workClock{parent: parent, done: make(chan struct{}), left: budget, started: time.Now()}
	w.stop = context.AfterFunc(parent, func() { w.end(parent.Err()) })
	w.timer = time.AfterFunc(budget, func() { w.end(context.DeadlineExceeded) })
	return w
}

func (w *workClock) end(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
		close(w.done)
	}
}

// pause stops the clock: the query waits on the client.
func (w *workClock) pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer == nil || w.err != nil {
		return
	}
	w.timer.Stop()
	w.timer = nil
	w.left -= time.Since(w.started)
}

// resume starts the clock again.
func (w *workClock) resume() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil || w.err != nil {
		return
	}
	w.started = time.Now()
	w.timer = time.AfterFunc(max(w.left, 0), func() { w.end(context.DeadlineExceeded) })
}

// release frees the clock's timer; call it when the query is over.
func (w *workClock) release() {
	w.stop()
	w.mu.Lock()
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.mu.Unlock()
	w.end(context.Canceled)
}

func (w *workClock) Deadline() (time.Time, bool) { return time.Time{}, false }
func (w *workClock) Done() <-chan struct{}       { return w.done }
func (w *workClock) Value(key any) any           { return w.parent.Value(key) }

func (w *workClock) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
