package relay

import (
	"context"
	"sync"
	"testing"
	"time"
)

// recorder is an inbox's handler under test: it records what it handled
// and can be held, as a handler busy with a slow query.
type recorder struct {
	mu      sync.Mutex
	handled []string
	gate    chan struct{}
	closed  int // goneAway calls
}

func newRecorder() *recorder {
	r := &recorder{gate: make(chan struct{})}
	close(r.gate)
	return r
}

func (r *recorder) hold() (release func()) {
	ch := make(chan struct{})
	r.mu.Lock()
	r.gate = ch
	r.mu.Unlock()
	return func() { close(ch) }
}

func (r *recorder) handle(m inMsg) {
	r.mu.Lock()
	gate := r.gate
	r.mu.Unlock()
	<-gate
	r.mu.Lock()
	r.handled = append(r.handled, string(m.data))
	r.mu.Unlock()
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.handled...)
}

func msg(s string) inMsg { return inMsg{data: []byte(s)} }

func TestInboxHandlesInOrderAndStops(t *testing.T) {
	rec := newRecorder()
	in := newInbox(rec.handle, func() { rec.closed++ })
	ctx := context.Background()
	for _, s := range []string{"a", "b", "c"} {
		if !in.put(ctx, msg(s)) {
			t.Fatal("put failed")
		}
	}
	in.wait() // the handler goroutine ends once nothing waits
	if got := rec.got(); len(got) != 3 || got[0] != "a" || got[2] != "c" {
		t.Fatalf("handled %v", got)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.handling || in.msgs != nil || in.bytes != 0 {
		t.Fatalf("idle inbox holds %d messages, %d bytes, handling %v", len(in.msgs), in.bytes, in.handling)
	}
}

// A busy handler makes the reader wait once maxInbox messages, or
// maxInboxBytes, wait; a message of any size fits an empty inbox.
func TestInboxIsBounded(t *testing.T) {
	rec := newRecorder()
	release := rec.hold()
	in := newInbox(rec.handle, func() {})
	ctx := context.Background()
	in.put(ctx, msg("held")) // taken by the handler, which waits
	for range maxInbox {
		in.put(ctx, msg("x"))
	}
	done := make(chan bool)
	go func() { done <- in.put(ctx, msg("one too many")) }()
	select {
	case <-done:
		t.Fatal("put went past maxInbox")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if !<-done {
		t.Fatal("put failed")
	}
	in.wait()
	if n := len(rec.got()); n != maxInbox+2 {
		t.Fatalf("handled %d, want %d", n, maxInbox+2)
	}

	release = rec.hold()
	in.put(ctx, msg("held"))
	big := inMsg{data: make([]byte, maxInboxBytes)}
	in.put(ctx, big) // an empty inbox takes any size
	cctx, cancel := context.WithCancel(ctx)
	go func() { done <- in.put(cctx, msg("more")) }()
	cancel()
	if <-done {
		t.Fatal("put past maxInboxBytes reported queued after its context ended")
	}
	release()
	in.wait()
}

// Going away: the close is queued only once every message read is handled;
// the reader hands over at most maxInbox more, then waits for the close;
// what it reads after the close is dropped and counted.
func TestInboxGoAway(t *testing.T) {
	rec := newRecorder()
	release := rec.hold()
	in := newInbox(rec.handle, nil)
	in.goneAway = func() { rec.closed++ } // called with in.mu held
	ctx := context.Background()
	in.put(ctx, msg("before"))
	in.goAway()
	if rec.closed != 0 {
		t.Fatal("close queued while a message read is unanswered")
	}
	for range maxInbox - 1 {
		in.put(ctx, msg("during"))
	}
	last := make(chan bool)
	go func() { last <- in.put(ctx, msg("share's last")) }() // waits for the close
	select {
	case <-last:
		t.Fatal("the reader read on past its share before the close")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if !<-last {
		t.Fatal("put failed")
	}
	in.wait()
	if rec.closed != 1 {
		t.Fatalf("close queued %d times, want once after all was handled", rec.closed)
	}
	if n := len(rec.got()); n != maxInbox+1 {
		t.Fatalf("handled %d, want %d", n, maxInbox+1)
	}
	in.put(ctx, msg("after the close"))
	if in.droppedAfterClose() != 1 || len(rec.got()) != maxInbox+1 {
		t.Fatalf("after the close: %d dropped, %d handled", in.droppedAfterClose(), len(rec.got()))
	}
}
