package relay

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// frame is one outbound text message, written as head+body+tail. Splitting
// it lets many subscriptions share one encoded event body.
type frame struct {
	head, body, tail []byte
}

func (f frame) size() int { return len(f.head) + len(f.body) + len(f.tail) }

var tailBracket = []byte("]")

// writeTimeout bounds one websocket write; a client that cannot take a frame
// in this time is gone.
const writeTimeout = 10 * time.Second

// maxPingTimeout bounds the wait for a pong. Pings (Config.PingInterval)
// find peers that vanished without closing (a dropped NAT mapping, a
// sleeping phone) before their sockets pile up.
const maxPingTimeout = 20 * time.Second

// conn is one client connection. Its reader runs in the HTTP handler's
// goroutine, its writer in a goroutine of its own; nobody else touches the
// socket. Everyone else enqueues frames, bounded by maxPending bytes.
type conn struct {
	r      *Relay
	ws     *websocket.Conn
	remote string
	ctx    context.Context
	cancel context.CancelFunc

	mu           sync.Mutex
	queue        []frame
	pendingBytes int
	closing      bool
	closeCode    websocket.StatusCode
	closeReason  string
	wake         chan struct{} // writer: something to do
	space        chan struct{} // waiting senders: the queue shrank
	writerDone   chan struct{}

	subs map[string]*sub        // reader goroutine only
	negs map[string]*negSession // NIP-77 sessions, reader goroutine only (negentropy.go)

	auth connAuth // NIP-42 state, see auth.go

	obs connObs // counts and close cause for operators, see observe.go
}

func newConn(r *Relay, ws *websocket.Conn, remote string) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		r:          r,
		ws:         ws,
		remote:     remote,
		ctx:        ctx,
		cancel:     cancel,
		wake:       make(chan struct{}, 1),
		space:      make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		subs:       map[string]*sub{},
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
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
	c.queue = append(c.queue, f)
	c.pendingBytes += f.size()
	c.mu.Unlock()
	signal(c.wake)
}

// sendWait queues f, waiting while the queue is over budget. For the reader
// goroutine, where waiting only slows down this client. It reports false if
// the connection is closing.
func (c *conn) sendWait(f frame) bool {
	for {
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return false
		}
		if c.pendingBytes == 0 || c.pendingBytes+f.size() <= c.r.cfg.Limits.MaxPendingBytes {
			c.queue = append(c.queue, f)
			c.pendingBytes += f.size()
			c.mu.Unlock()
			signal(c.wake)
			return true
		}
		c.mu.Unlock()
		select {
		case <-c.space:
		case <-c.ctx.Done():
			return false
		}
	}
}

// evict closes a client that cannot keep up, with a reason, and counts it.
func (c *conn) evict(why string) {
	if c.closeWith(websocket.StatusPolicyViolation, why) {
		c.r.stats.slowEvictions.Add(1)
		c.r.log.Info("evicted slow client", "remote", c.remote, "reason", why)
	}
}

// closeWith asks the writer to flush what is queued and close the socket
// with code and reason. It reports whether this call started the close.
func (c *conn) closeWith(code websocket.StatusCode, why string) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.closing = true
	c.closeCode, c.closeReason = code, why
	if code == websocket.StatusPolicyViolation {
		// A slow consumer gets no more of its backlog.
		c.queue, c.pendingBytes = nil, 0
	}
	c.mu.Unlock()
	signal(c.wake)
	return true
}

// writeLoop owns conn writes. It exits after closing the socket.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	ping := time.NewTicker(c.r.cfg.PingInterval)
	defer ping.Stop()
	var buf []byte
	for {
		select {
		case <-c.wake:
		case <-ping.C:
			go c.keepalive()
			continue
		case <-c.ctx.Done():
			c.ws.CloseNow()
			return
		}
		for {
			c.mu.Lock()
			batch := c.queue
			c.queue = nil
			closing := c.closing
			code, why := c.closeCode, c.closeReason
			c.mu.Unlock()
			if len(batch) == 0 {
				if closing {
					c.finish(code, why)
					return
				}
				break
			}
			for _, f := range batch {
				buf = append(buf[:0], f.head...)
				buf = append(buf, f.body...)
				buf = append(buf, f.tail...)
				ctx, cancel := context.WithTimeout(c.ctx, writeTimeout)
				err := c.ws.Write(ctx, websocket.MessageText, buf)
				cancel()
				if err != nil {
					c.mu.Lock()
					c.closing = true
					c.queue, c.pendingBytes = nil, 0
					c.mu.Unlock()
					c.cancel()
					c.ws.CloseNow()
					return
				}
				c.mu.Lock()
				c.pendingBytes -= f.size()
				c.mu.Unlock()
				signal(c.space)
				c.obs.out++
				c.r.metrics().MessageOut(frameVerb(f))
			}
			if cap(buf) > 64<<10 {
				buf = nil // don't pin a large buffer on an idle connection
			}
		}
	}
}

// finish closes the socket with a status; the reader sees the close and ends.
func (c *conn) finish(code websocket.StatusCode, why string) {
	if len(why) > 120 {
		why = why[:120] // a close reason must fit a control frame
	}
	err := c.ws.Close(code, why)
	if err != nil && !errors.Is(err, context.Canceled) {
		c.ws.CloseNow()
	}
	c.cancel()
}

// keepalive pings the client and drops the connection if no pong comes. It
// runs in a short-lived goroutine so the writer never waits for a pong.
func (c *conn) keepalive() {
	ctx, cancel := context.WithTimeout(c.ctx, min(c.r.cfg.PingInterval, maxPingTimeout))
	defer cancel()
	if err := c.ws.Ping(ctx); err != nil && c.ctx.Err() == nil {
		c.r.log.Debug("client did not answer a ping", "remote", c.remote, "err", err)
		c.cancel()
	}
}
