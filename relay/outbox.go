package relay

import (
	"context"
	"errors"
	"sync"

	"github.com/wisp-relay/wisp/relay/wsconn"
)

// frame is one outbound message, written as head+body+tail. Splitting it
// lets many subscriptions share one encoded event body. op is 0 for a text
// message, else a control frame (ping, pong, close).
type frame struct {
	head, body, tail []byte
	op               wsconn.Opcode
}

func (f frame) size() int { return len(f.head) + len(f.body) + len(f.tail) }

var tailBracket = []byte("]")

// outbox is a connection's frames on their way to the client: a queue
// bounded in bytes, and a writer that runs only while frames wait (a
// goroutine of its own, or the handler writing its own frames inline), so
// an idle connection holds no goroutine and no buffer for it. One mutex
// guards it; nobody writes to the socket but the writer.
//
// Senders come in two kinds. Those that must never block (the
// broadcaster, the pipeline's OKs, pongs) offer a frame, which is refused
// once the queue is over budget: the connection is then a slow consumer.
// The handler puts its frames, waiting while the queue holds half the
// budget, so that a big stored answer leaves the other half for live
// events.
type outbox struct {
	budget int // most bytes queued (Limits.MaxPendingBytes)
	io     outboxIO

	mu          sync.Mutex
	queue       []frame
	pending     int  // bytes in queue and in the writer's hands
	writing     bool // a writer runs
	closing     bool // no more frames: a close frame is queued, or the connection was dropped
	closeCode   wsconn.StatusCode
	closeReason string
	space       chan struct{} // a waiting put: the queue shrank
	writers     sync.WaitGroup
}

// outboxIO is what an outbox writes with.
type outboxIO struct {
	write     func(buf []byte) error // one write of framed bytes to the socket, with its deadline
	closeSent func()                 // called once the close frame is written
	failed    func()                 // a write failed: the connection is gone
	sent      func(f frame)          // a text frame was written
	bufs      *sync.Pool             // framing buffers (*[]byte), shared by every connection
	writers   *writerPool            // parked writers, shared; nil: a goroutine per run
}

func newOutbox(budget int, io outboxIO) *outbox {
	return &outbox{budget: budget, io: io, space: make(chan struct{}, 1)}
}

// errCloseSent ends the writer after the close frame: nothing follows it.
var errCloseSent = errors.New("close frame sent")

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// pushLocked queues f and starts a writer goroutine unless one runs.
// o.mu is held.
func (o *outbox) pushLocked(f frame) {
	o.queue = append(o.queue, f)
	o.pending += f.size()
	if !o.writing {
		o.writing = true
		o.startWriter()
	}
}

// startWriter runs the writer off the caller's goroutine; o.mu is held.
func (o *outbox) startWriter() {
	o.writers.Add(1)
	if o.io.writers != nil {
		o.io.writers.start(o)
		return
	}
	go o.writeLoop(false)
}

// offer queues f without ever blocking. It reports false when the queue
// is over budget (the caller evicts the connection); a frame offered to a
// closing outbox is dropped and reported queued.
func (o *outbox) offer(f frame) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return true
	}
	if o.pending > 0 && o.pending+f.size() > o.budget {
		return false
	}
	o.pushLocked(f)
	return true
}

// pauser is told when put waits on the client (its writes, or room in
// the queue): a query's clock stops meanwhile (workClock).
type pauser interface {
	pause()
	resume()
}

// put queues f for the handler, which writes its frames itself once a
// message is handled (flush), or as soon as flushBytes wait. While half
// the budget is queued it writes, or waits for the writer until ctx is
// done. It reports false if the outbox is closing. waiting, if not nil, is
// paused while put writes or waits.
func (o *outbox) put(ctx context.Context, f frame, waiting pauser) bool {
	for {
		o.mu.Lock()
		if o.closing {
			o.mu.Unlock()
			return false
		}
		if o.pending == 0 || o.pending+f.size() <= o.budget/2 {
			o.queue = append(o.queue, f)
			o.pending += f.size()
			full := o.pending >= flushBytes
			o.mu.Unlock()
			if full {
				o.flushWaiting(waiting)
			}
			return true
		}
		o.mu.Unlock()
		if o.flushWaiting(waiting) {
			continue
		}
		if waiting != nil {
			waiting.pause()
		}
		select {
		case <-o.space:
		case <-ctx.Done():
			return false
		}
		if waiting != nil {
			waiting.resume()
		}
	}
}

// flushWaiting is flush, with waiting paused while it writes.
func (o *outbox) flushWaiting(waiting pauser) bool {
	if waiting == nil {
		return o.flush()
	}
	waiting.pause()
	defer waiting.resume()
	return o.flush()
}

// flush writes what is queued from the calling goroutine, the handler,
// unless a writer already runs; it reports whether it wrote. The frames of
// one message (a REQ's stored events and EOSE) thus go out together, and
// no goroutine has to be started and woken for them.
func (o *outbox) flush() bool {
	o.mu.Lock()
	if o.writing || len(o.queue) == 0 {
		o.mu.Unlock()
		return false
	}
	o.writing = true
	o.writers.Add(1)
	o.mu.Unlock()
	o.writeLoop(true)
	return true
}

// close queues a close frame with code and reason behind what is queued,
// and refuses further frames; a slow consumer (1008) gets none of its
// backlog. It reports whether this call started the close.
func (o *outbox) close(code wsconn.StatusCode, why string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return false
	}
	o.closing = true
	o.closeCode, o.closeReason = code, why
	if code == wsconn.StatusPolicyViolation {
		o.queue, o.pending = nil, 0
	}
	o.pushLocked(frame{op: wsconn.OpClose, body: wsconn.ClosePayload(code, why)})
	return true
}

// drop refuses further frames and forgets the queue, for a connection
// dropped without a close handshake (code 0).
func (o *outbox) drop(why string) {
	o.mu.Lock()
	if !o.closing {
		o.closing = true
		o.closeCode, o.closeReason = 0, why
	}
	o.queue, o.pending = nil, 0
	o.mu.Unlock()
}

// ping queues a ping unless the outbox is closing.
func (o *outbox) ping() {
	o.mu.Lock()
	if !o.closing {
		o.pushLocked(frame{op: wsconn.OpPing})
	}
	o.mu.Unlock()
}

// queued is the number of bytes waiting to be written.
func (o *outbox) queued() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pending
}

// closed says whether the outbox is closing, and with what code and reason.
func (o *outbox) closed() (closing bool, code wsconn.StatusCode, why string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closing, o.closeCode, o.closeReason
}

// wait waits for every writer to return.
func (o *outbox) wait() { o.writers.Wait() }

// writeLoop writes queued frames until the queue is empty, framing as
// many as fit writeChunk into one write. Run inline by the handler, it
// writes one batch and leaves the rest to a goroutine, so that a busy live
// subscription cannot keep the handler from the client's next message.
func (o *outbox) writeLoop(inline bool) {
	defer o.writers.Done()
	bp, ok := o.io.bufs.Get().(*[]byte)
	if !ok {
		b := make([]byte, 0, 16<<10)
		bp = &b
	}
	defer func() {
		if cap(*bp) <= 1<<20 { // don't keep a buffer grown by a huge answer
			o.io.bufs.Put(bp)
		}
	}()
	for {
		o.mu.Lock()
		batch := o.queue
		o.queue = nil
		if len(batch) == 0 {
			o.writing = false
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		if err := o.writeBatch(bp, batch); err != nil {
			if !errors.Is(err, errCloseSent) {
				o.io.failed()
			}
			o.mu.Lock()
			o.writing = false
			o.queue, o.pending = nil, 0
			o.mu.Unlock()
			return
		}
		if inline {
			o.mu.Lock()
			if len(o.queue) == 0 {
				o.writing = false
			} else {
				o.startWriter()
			}
			o.mu.Unlock()
			return
		}
	}
}

func (o *outbox) writeBatch(bp *[]byte, batch []frame) error {
	buf := (*bp)[:0]
	defer func() { *bp = buf[:0] }()
	start, size := 0, 0
	flush := func(end int) error {
		if len(buf) == 0 {
			return nil
		}
		err := o.io.write(buf)
		buf = buf[:0]
		o.mu.Lock()
		o.pending = max(0, o.pending-size)
		o.mu.Unlock()
		signal(o.space)
		if err == nil {
			for _, f := range batch[start:end] {
				if f.op == 0 {
					o.io.sent(f)
				}
			}
		}
		start, size = end, 0
		return err
	}
	for i, f := range batch {
		op := f.op
		if op == 0 {
			op = wsconn.OpText
		}
		buf = wsconn.AppendFrame(buf, op, f.head, f.body, f.tail)
		size += f.size()
		if op == wsconn.OpClose {
			if err := flush(i + 1); err != nil {
				return err
			}
			o.io.closeSent()
			return errCloseSent
		}
		if len(buf) >= writeChunk {
			if err := flush(i + 1); err != nil {
				return err
			}
		}
	}
	return flush(len(batch))
}
