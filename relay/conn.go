package relay

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/wisp-relay/wisp/relay/wsconn"
)

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

	out *outbox // frames on their way to the client, see outbox.go

	maxMessage int // the read limit it was opened with (Limits.MaxMessageBytes)

	// reads counts frames received, for the keepalive sweep; pinged and
	// readsAtPing belong to the sweep (keepalive).
	reads       atomic.Uint64
	pinged      bool
	readsAtPing uint64

	in *inbox // messages read and not yet handled, see inbox.go

	// The handler's state: one handler goroutine runs at a time.
	queryClock *workClock             // the stored query being answered, see workclock.go
	subs       map[string]*sub        // open subscriptions
	subBytes   int                    // their cost, see budget.go
	negs       map[string]*negSession // NIP-77 sessions (negentropy.go)
	negEvents  int                    // the events they hold

	auth connAuth // NIP-42 state, see auth.go

	obs connObs // counts and close cause for operators, see observe.go
}

// newConn wires a connection; lim are the limits in force when it was
// opened, of which it keeps MaxMessageBytes and MaxPendingBytes (see Live).
func newConn(r *Relay, ws *wsconn.Conn, remote string, lim *Limits) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		r:      r,
		ws:     ws,
		remote: remote,
		ctx:    ctx,
		cancel: cancel,
		subs:   map[string]*sub{},

		maxMessage: lim.MaxMessageBytes,
	}
	c.out = newOutbox(lim.MaxPendingBytes, outboxIO{
		write: func(buf []byte) error { return ws.Write(buf, writeTimeout) },
		// The client answers with its close frame; don't wait forever.
		closeSent: func() { ws.SetReadDeadline(time.Now().Add(closeWait)) },
		failed:    func() { c.abort("write failed") },
		sent: func(f frame) {
			c.obs.out++ // writers run one at a time
			r.metrics().MessageOut(frameVerb(f))
		},
		bufs:    &r.writeBufs,
		writers: r.writers,
	})
	c.in = newInbox(c.handleMsg, func() { c.closeWith(wsconn.StatusGoingAway, "relay is shutting down") })
	ws.OnControl = c.onControl
	return c
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

// sendNoWait queues f, or evicts the connection when its queue is over
// budget. For senders that must never block: the writer and the broadcaster.
func (c *conn) sendNoWait(f frame) {
	if !c.out.offer(f) {
		c.evict("slow consumer: outbound queue over its byte budget")
	}
}

// sendWait queues a frame of the handler's (see outbox.put); it reports
// false if the connection is closing. The clock of a stored query being
// answered stops while it waits on the client.
func (c *conn) sendWait(f frame) bool {
	if c.queryClock != nil {
		return c.out.put(c.ctx, f, c.queryClock)
	}
	return c.out.put(c.ctx, f, nil)
}

// flushInline writes the handler's queued frames from the handler.
func (c *conn) flushInline() bool { return c.out.flush() }

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
func (c *conn) closeWith(code wsconn.StatusCode, why string) bool { return c.out.close(code, why) }

// abort drops the connection without a close handshake: the reader and
// any writer return at once.
func (c *conn) abort(why string) {
	c.out.drop(why)
	c.cancel()
	c.ws.Close()
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
	c.out.ping()
}
