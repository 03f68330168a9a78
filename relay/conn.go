package relay

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

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

// writeTimeout bounds one socket write; a client that cannot take a
// batch of frames in this time is gone.
const writeTimeout = 10 * time.Second

// closeWait bounds the wait for the client's close frame after the relay
// sent its own.
const closeWait = 3 * time.Second

// flushBytes: the handler writes its queued frames once this many bytes
// wait, else when it has handled the message; so a whole REQ answer
// usually goes out in one write.
const flushBytes = 64 << 10

// writeChunk bounds the bytes framed into one write.
const writeChunk = 256 << 10

// conn is one client connection. Its reader runs in a goroutine of its
// own; a handler goroutine runs only while messages wait, and a writer
// goroutine only while frames are queued, so an idle connection costs one
// parked goroutine with a shallow stack and no buffers. Everyone else
// enqueues frames, bounded by maxPending bytes.
type conn struct {
	r      *Relay
	ws     *wsconn.Conn
	remote string
	ctx    context.Context
	cancel context.CancelFunc

	mu           sync.Mutex
	queue        []frame
	pendingBytes int
	writing      bool // a writer runs: a goroutine of its own, or the handler
	closing      bool
	closeCode    wsconn.StatusCode
	closeReason  string
	space        chan struct{} // waiting senders: the queue shrank
	writers      sync.WaitGroup

	// reads counts frames received, for the keepalive sweep; pinged and
	// readsAtPing belong to the sweep (keepalive).
	reads       atomic.Uint64
	pinged      bool
	readsAtPing uint64

	// Messages read and not yet handled; see dispatch.
	inMu     sync.Mutex
	inbox    []inMsg
	inBytes  int  // the messages' sizes, see maxInboxBytes
	handling bool // a handler goroutine is running
	inSpace  chan struct{}
	handlers sync.WaitGroup
	away     awayState // closing for shutdown, see goaway.go

	// The handler's state: one handler goroutine runs at a time.
	subs      map[string]*sub        // open subscriptions
	subBytes  int                    // their cost, see budget.go
	negs      map[string]*negSession // NIP-77 sessions (negentropy.go)
	negEvents int                    // the events they hold

	auth connAuth // NIP-42 state, see auth.go

	obs connObs // counts and close cause for operators, see observe.go
}

func newConn(r *Relay, ws *wsconn.Conn, remote string) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		r:       r,
		ws:      ws,
		remote:  remote,
		ctx:     ctx,
		cancel:  cancel,
		space:   make(chan struct{}, 1),
		inSpace: make(chan struct{}, 1),
		subs:    map[string]*sub{},
	}
	ws.OnControl = c.onControl
	return c
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// onControl answers pings; any frame shows the client is alive. Pongs
// count against the outbound budget like any frame, so a client that
// pings without reading is evicted rather than piling them up.
func (c *conn) onControl(op wsconn.Opcode, payload []byte) {
	c.reads.Add(1)
	if op == wsconn.OpPing {
		c.sendNoWait(frame{op: wsconn.OpPong, body: append([]byte(nil), payload...)})
	}
}

// pushLocked queues f and starts a writer goroutine unless one runs
// already. c.mu is held. For everyone but the handler, which writes its
// own frames (see sendWait).
func (c *conn) pushLocked(f frame) {
	c.queue = append(c.queue, f)
	c.pendingBytes += f.size()
	if !c.writing {
		c.writing = true
		c.writers.Add(1)
		go c.writeLoop(false)
	}
}

// flushInline writes what is queued from the calling goroutine, the
// handler, unless a writer already runs; it reports whether it wrote. The
// handler's frames of one message (a REQ's stored events and EOSE) thus go
// out together, and no goroutine has to be started and woken for them.
func (c *conn) flushInline() bool {
	c.mu.Lock()
	if c.writing || len(c.queue) == 0 {
		c.mu.Unlock()
		return false
	}
	c.writing = true
	c.writers.Add(1)
	c.mu.Unlock()
	c.writeLoop(true)
	return true
}

// sendNoWait queues f, or evicts the connection when its queue is over
// budget. For senders that must never block: the writer and the broadcaster.
func (c *conn) sendNoWait(f frame) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	if c.pendingBytes > 0 && c.pendingBytes+f.size() > c.r.cfg.Limits.MaxPendingBytes {
		c.mu.Unlock()
		c.evict("slow consumer: outbound queue over its byte budget")
		return
	}
	c.pushLocked(f)
	c.mu.Unlock()
}

// sendWait queues f for the handler, which writes its frames itself once
// the message is handled (flushInline), or as soon as flushBytes wait.
// The handler's frames (a REQ's stored events above all) may fill only
// half the budget: past it the handler writes, or waits for the writer,
// and the other half stays for live events, which sendNoWait would
// otherwise count as a slow consumer's whenever a big answer is on its
// way. It reports false if the connection is closing.
func (c *conn) sendWait(f frame) bool {
	for {
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return false
		}
		if c.pendingBytes == 0 || c.pendingBytes+f.size() <= c.r.cfg.Limits.MaxPendingBytes/2 {
			c.queue = append(c.queue, f)
			c.pendingBytes += f.size()
			full := c.pendingBytes >= flushBytes
			c.mu.Unlock()
			if full {
				c.flushInline()
			}
			return true
		}
		c.mu.Unlock()
		if c.flushInline() {
			continue
		}
		select {
		case <-c.space:
		case <-c.ctx.Done():
			return false
		}
	}
}

// evict closes a client that cannot keep up, with a reason, and counts it.
func (c *conn) evict(why string) {
	if c.closeWith(wsconn.StatusPolicyViolation, why) {
		c.r.stats.slowEvictions.Add(1)
		c.r.log.Info("evicted slow client", "remote", c.remote, "reason", why)
	}
}

// closeWith queues a close frame with code and reason behind what is
// queued, and refuses further frames. It reports whether this call started
// the close.
func (c *conn) closeWith(code wsconn.StatusCode, why string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.closing = true
	c.closeCode, c.closeReason = code, why
	if code == wsconn.StatusPolicyViolation {
		// A slow consumer gets no more of its backlog.
		c.queue, c.pendingBytes = nil, 0
	}
	c.pushLocked(frame{op: wsconn.OpClose, body: wsconn.ClosePayload(code, why)})
	return true
}

// abort drops the connection without a close handshake: the reader and
// any writer return at once.
func (c *conn) abort(why string) {
	c.mu.Lock()
	if !c.closing {
		c.closing = true
		c.closeCode, c.closeReason = 0, why
	}
	c.queue, c.pendingBytes = nil, 0
	c.mu.Unlock()
	c.cancel()
	c.ws.Close()
}

// writeLoop writes queued frames until the queue is empty, framing as
// many as fit writeChunk into one write. It runs only while there is
// something to write. Run inline by the handler, it writes one batch and
// leaves the rest to a goroutine, so that a busy live subscription cannot
// keep the handler from the client's next message.
func (c *conn) writeLoop(inline bool) {
	defer c.writers.Done()
	// Framing buffers are shared (Relay.writeBufs), so an idle connection
	// holds none.
	bp, ok := c.r.writeBufs.Get().(*[]byte)
	if !ok {
		b := make([]byte, 0, 16<<10)
		bp = &b
	}
	defer func() {
		if cap(*bp) <= 1<<20 { // don't keep a buffer grown by a huge answer
			c.r.writeBufs.Put(bp)
		}
	}()
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue = nil
		if len(batch) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if err := c.writeBatch(bp, batch); err != nil {
			if !errors.Is(err, errCloseSent) {
				c.abort("write failed")
			}
			c.mu.Lock()
			c.writing = false
			c.queue, c.pendingBytes = nil, 0
			c.mu.Unlock()
			return
		}
		if inline {
			c.mu.Lock()
			if len(c.queue) == 0 {
				c.writing = false
			} else {
				c.writers.Add(1)
				go c.writeLoop(false)
			}
			c.mu.Unlock()
			return
		}
	}
}

// errCloseSent ends the writer after the close frame: nothing follows it.
var errCloseSent = errors.New("close frame sent")

func (c *conn) writeBatch(bp *[]byte, batch []frame) error {
	buf := (*bp)[:0]
	defer func() { *bp = buf[:0] }()
	start, size := 0, 0
	flush := func(end int) error {
		if len(buf) == 0 {
			return nil
		}
		err := c.ws.Write(buf, writeTimeout)
		buf = buf[:0]
		c.mu.Lock()
		c.pendingBytes = max(0, c.pendingBytes-size)
		c.mu.Unlock()
		signal(c.space)
		for _, f := range batch[start:end] {
			if err == nil && f.op == 0 {
				c.obs.out++
				c.r.metrics().MessageOut(frameVerb(f))
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
			// The client answers with its close frame; don't wait forever.
			c.ws.SetReadDeadline(time.Now().Add(closeWait))
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

// keepalive pings the client, or drops it when nothing at all came from it
// since the last ping: a peer that vanished without closing (a dropped NAT
// mapping, a sleeping phone). Only the relay's ping sweep calls it.
func (c *conn) keepalive() {
	n := c.reads.Load()
	if c.pinged && n == c.readsAtPing {
		c.r.log.Debug("client did not answer a ping", "remote", c.remote)
		c.abort("no answer to ping")
		return
	}
	c.pinged, c.readsAtPing = true, n
	c.mu.Lock()
	if !c.closing {
		c.pushLocked(frame{op: wsconn.OpPing})
	}
	c.mu.Unlock()
}
