package relay

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/wisp-relay/wisp/relay/wsconn"
)

// fakeSocket is what an outbox under test writes to: it keeps the frames
// (server frames are unmasked, so easy to read back) and can be held shut,
// as a client that does not read.
type fakeSocket struct {
	mu        sync.Mutex
	frames    []sentFrame
	sent      []string
	closeSent bool
	failed    bool
	open      chan struct{} // closed: writes go through
	fail      bool
}

type sentFrame struct {
	op      wsconn.Opcode
	payload string
}

func newFakeSocket() *fakeSocket {
	s := &fakeSocket{open: make(chan struct{})}
	close(s.open)
	return s
}

// hold makes writes wait until release.
func (s *fakeSocket) hold() (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.open = ch
	s.mu.Unlock()
	return func() { close(ch) }
}

func (s *fakeSocket) io() outboxIO {
	return outboxIO{
		write: func(buf []byte) error {
			s.mu.Lock()
			open, fail := s.open, s.fail
			s.mu.Unlock()
			<-open
			if fail {
				return context.DeadlineExceeded
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			for len(buf) > 0 {
				op := wsconn.Opcode(buf[0] & 0x0f)
				n, h := uint64(buf[1]&0x7f), 2
				switch n {
				case 126:
					n, h = uint64(binary.BigEndian.Uint16(buf[2:])), 4
				case 127:
					n, h = binary.BigEndian.Uint64(buf[2:]), 10
				}
				s.frames = append(s.frames, sentFrame{op, string(buf[h : h+int(n)])})
				buf = buf[h+int(n):]
			}
			return nil
		},
		closeSent: func() { s.mu.Lock(); s.closeSent = true; s.mu.Unlock() },
		failed:    func() { s.mu.Lock(); s.failed = true; s.mu.Unlock() },
		sent:      func(f frame) { s.mu.Lock(); s.sent = append(s.sent, string(f.body)); s.mu.Unlock() },
		bufs:      &sync.Pool{},
	}
}

func (s *fakeSocket) written() []sentFrame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sentFrame(nil), s.frames...)
}

func text(s string) frame { return frame{body: []byte(s)} }

func TestOutboxOfferIsBoundedAndNeverBlocks(t *testing.T) {
	sock := newFakeSocket()
	release := sock.hold()
	o := newOutbox(100, sock.io())
	if !o.offer(text(string(make([]byte, 150)))) {
		t.Fatal("a frame larger than the budget refused on an empty queue")
	}
	if o.offer(text("x")) {
		t.Fatal("offer over budget accepted")
	}
	release()
	o.wait()
	if o.queued() != 0 {
		t.Fatalf("%d bytes still queued", o.queued())
	}
	if !o.offer(text("x")) {
		t.Fatal("offer refused once drained")
	}
	o.wait()
	if got := sock.written(); len(got) != 2 || got[1].payload != "x" {
		t.Fatalf("written %v", got)
	}
}

// put fills only half the budget, then waits for the writer; live events
// offered meanwhile fit in the other half.
func TestOutboxPutLeavesHalfForOffers(t *testing.T) {
	sock := newFakeSocket()
	release := sock.hold()
	o := newOutbox(100, sock.io())
	o.offer(text("0123456789")) // a writer starts, held on the socket
	for o.queued() == 0 {
		time.Sleep(time.Millisecond)
	}
	put := make(chan bool)
	go func() { put <- o.put(context.Background(), text(string(make([]byte, 45))), nil) }()
	select {
	case <-put:
		t.Fatal("put went past half the budget")
	case <-time.After(50 * time.Millisecond):
	}
	if !o.offer(text(string(make([]byte, 40)))) {
		t.Fatal("a live event refused while a put waits")
	}
	release()
	if !<-put {
		t.Fatal("put failed")
	}
	o.flush()
	o.wait()
	if got := sock.written(); len(got) != 3 {
		t.Fatalf("%d frames written, want 3", len(got))
	}
	// A put waiting on a client that never reads gives up with its context.
	sock.hold()
	o.offer(text(string(make([]byte, 60))))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { put <- o.put(ctx, text("y"), nil) }()
	cancel()
	if <-put {
		t.Fatal("put reported queued after its context ended")
	}
}

func TestOutboxCloseGoesLast(t *testing.T) {
	sock := newFakeSocket()
	o := newOutbox(1000, sock.io())
	release := sock.hold()
	o.offer(text("a"))
	o.offer(text("b"))
	if !o.close(wsconn.StatusGoingAway, "bye") || o.close(wsconn.StatusNormalClosure, "") {
		t.Fatal("close started twice, or not at all")
	}
	o.offer(text("after"))
	if o.put(context.Background(), text("after"), nil) {
		t.Fatal("put accepted after close")
	}
	release()
	o.wait()
	got := sock.written()
	if len(got) != 3 || got[0].payload != "a" || got[1].payload != "b" || got[2].op != wsconn.OpClose {
		t.Fatalf("written %v, want a, b, then the close frame", got)
	}
	if closing, code, why := o.closed(); !closing || code != wsconn.StatusGoingAway || why != "bye" || !sock.closeSent {
		t.Fatalf("closed() = %v %v %q, closeSent %v", closing, code, why, sock.closeSent)
	}
	if len(sock.sent) != 2 {
		t.Fatalf("sent %v: only text frames count", sock.sent)
	}
}

// A slow consumer's close (1008) drops its backlog; drop sends nothing.
func TestOutboxEvictionAndDrop(t *testing.T) {
	sock := newFakeSocket()
	release := sock.hold()
	o := newOutbox(1000, sock.io())
	o.offer(text("first")) // in the writer's hands
	for o.queued() == 0 {
		time.Sleep(time.Millisecond)
	}
	o.offer(text("backlog"))
	o.close(wsconn.StatusPolicyViolation, "slow")
	release()
	o.wait()
	for _, f := range sock.written() {
		if f.payload == "backlog" {
			t.Fatal("the backlog went out after a 1008")
		}
	}
	d := newOutbox(1000, sock.io())
	d.drop("gone")
	d.offer(text("x"))
	d.wait()
	if closing, code, why := d.closed(); !closing || code != 0 || why != "gone" || d.queued() != 0 {
		t.Fatalf("after drop: %v %v %q, %d queued", closing, code, why, d.queued())
	}
}

func TestOutboxWriteFailure(t *testing.T) {
	sock := newFakeSocket()
	sock.fail = true
	o := newOutbox(1000, sock.io())
	o.offer(text("x"))
	o.wait()
	if !sock.failed || o.queued() != 0 {
		t.Fatalf("failed %v, %d queued", sock.failed, o.queued())
	}
}
