// Package wsconn is the server side of RFC 6455 websockets, shaped for a
// relay that holds thousands of mostly idle connections and sends bursts of
// small messages:
//
//   - a connection waiting for its next message holds no read buffer: the
//     wait happens in the network poller (read_unix.go; elsewhere in a
//     one-byte read), and a pooled buffer is taken only once bytes have
//     arrived;
//   - the caller frames many messages into one buffer (AppendFrame) and
//     sends them with one Write, one system call for a whole REQ answer;
//   - nothing runs in the background: no goroutine, no timer per connection.
//
// It speaks no extension (no compression) and no subprotocol, and holds
// the peer to RFC 6455: protocol_test.go runs the Autobahn suite's
// sections 1-7 against it, FuzzReader an independent reading of the RFC
// (reference_test.go). Clients of the relay (bench, mirror, tests) keep
// using github.com/coder/websocket.
package wsconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"
)

// Opcode is a frame's type (RFC 6455 section 5.2).
type Opcode byte

const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// StatusCode is a close frame's status (RFC 6455 section 7.4).
type StatusCode uint16

const (
	StatusNormalClosure   StatusCode = 1000
	StatusGoingAway       StatusCode = 1001
	StatusProtocolError   StatusCode = 1002
	StatusNoStatusRcvd    StatusCode = 1005
	StatusInvalidPayload  StatusCode = 1007
	StatusPolicyViolation StatusCode = 1008
	StatusMessageTooBig   StatusCode = 1009
)

// CloseError is what ReadMessage returns when the peer sent a close frame.
// The caller should answer with a close frame of its own (see AppendClose).
type CloseError struct {
	Code   StatusCode
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("websocket closed by peer: status %d %q", e.Code, e.Reason)
}

// ProtocolError is a violation of RFC 6455 by the peer (Code 1002, or 1007
// for text that is not UTF-8), or a message over the read limit (1009).
// ReadMessage returns it after queuing nothing: the caller closes with Code
// and Reason, then calls Drain.
type ProtocolError struct {
	Code   StatusCode
	Reason string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("websocket protocol error: status %d %s", e.Code, e.Reason)
}

// Unwrap makes errors.Is(err, ErrMessageTooBig) work.
func (e *ProtocolError) Unwrap() error {
	if e.Code == StatusMessageTooBig {
		return ErrMessageTooBig
	}
	return nil
}

// ErrMessageTooBig is wrapped by the ProtocolError for a message over the
// read limit, so callers can tell it apart.
var ErrMessageTooBig = errors.New("message too big")

// bufSize is the size of pooled read buffers. Most Nostr messages fit; a
// larger one is read into a buffer of its own size.
const bufSize = 16 << 10

// bufPool lends read buffers to the connections of one Upgrader.
type bufPool struct{ p sync.Pool }

func (b *bufPool) get() *[]byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return buf
	}
	buf := make([]byte, bufSize)
	return &buf
}

func (b *bufPool) put(buf *[]byte) { b.p.Put(buf) }

// Conn is one server-side websocket. One goroutine may read (ReadMessage)
// while another writes (Write); Close may be called from anywhere.
type Conn struct {
	nc    net.Conn
	limit int
	bufs  *bufPool

	// Read side, owned by the reading goroutine.
	pre   []byte  // bytes read by the HTTP server before the upgrade
	rbuf  *[]byte // pooled; nil while no unread bytes are buffered
	r, w  int     // unread bytes are (*rbuf)[r:w]
	msg   []byte  // the fragments of the message being assembled
	valid int     // how much of msg is known to be whole UTF-8 characters
	skip  int64   // payload bytes of a refused frame left unread, see Drain
	lost  bool    // a broken header: where the next frame starts is unknown
	wake  [1]byte // waitPortable's one-byte read, see there
	poll  poller  // waiting without a buffer, where the platform allows

	// OnControl, when set, is told about every ping and pong received, with
	// its payload (valid only during the call). The caller answers pings
	// with a pong (AppendFrame(dst, OpPong, payload)).
	OnControl func(op Opcode, payload []byte)

	// Write side, owned by the one writer: the write deadline last set.
	wdl time.Time
}

func newConn(nc net.Conn, pre []byte, limit int, bufs *bufPool) *Conn {
	c := &Conn{nc: nc, pre: pre, limit: limit, bufs: bufs}
	c.initPoller()
	return c
}

// Close closes the network connection at once; a blocked ReadMessage or
// Write returns.
func (c *Conn) Close() error { return c.nc.Close() }

// Write writes bytes already framed with AppendFrame, within timeout: a
// write that cannot finish within a half to the whole of timeout fails.
// Only one goroutine may write at a time.
func (c *Conn) Write(b []byte, timeout time.Duration) error {
	// Setting the deadline re-arms a runtime timer, a tenth of a small
	// write's cost; the fan-out writes small messages to many connections,
	// so the deadline moves only once half of it has gone.
	if now := time.Now(); c.wdl.Sub(now) < timeout/2 {
		c.wdl = now.Add(timeout)
		if err := c.nc.SetWriteDeadline(c.wdl); err != nil {
			return err
		}
	}
	_, err := c.nc.Write(b)
	return err
}

// Drain reads and discards what the client still sends until it closes
// the connection, sends its close frame, or d has passed. Call it after
// sending a close frame for a protocol error: a socket closed with unread
// bytes is reset, and the client might never see the close frame.
func (c *Conn) Drain(d time.Duration) {
	if err := c.nc.SetReadDeadline(time.Now().Add(d)); err != nil {
		return
	}
	if c.skip > 0 {
		if err := c.discard(c.skip); err != nil {
			return
		}
		c.skip = 0
	}
	for !c.lost {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			return // the client's close frame, EOF, or the deadline
		}
		if c.lost || c.discard(c.skip) != nil {
			break
		}
		c.skip = 0 // another refused message, skipped
	}
	// Frames are lost: take bytes until the client closes or d passes.
	buf := c.bufs.get()
	defer c.bufs.put(buf)
	c.r = c.w
	c.release()
	for {
		if _, err := c.nc.Read(*buf); err != nil {
			return
		}
	}
}

// discard drops the next n bytes of the stream.
func (c *Conn) discard(n int64) error {
	for n > 0 {
		if c.rbuf == nil || c.r == c.w {
			if err := c.fill(); err != nil {
				return err
			}
		}
		k := min(n, int64(c.w-c.r))
		c.r += int(k)
		n -= k
	}
	c.release()
	return nil
}

// SetReadDeadline bounds the wait for the peer, e.g. for its close frame
// after ours.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// ReadMessage returns the next text or binary message; a text message is
// valid UTF-8. The payload belongs to the caller. Pings and pongs go to
// OnControl; a close frame ends the read with a *CloseError; a broken rule
// of the protocol with a *ProtocolError.
func (c *Conn) ReadMessage() (Opcode, []byte, error) {
	var msgOp Opcode
	c.msg, c.valid = c.msg[:0], 0
	for {
		h, err := c.readHeader()
		if err != nil {
			return 0, nil, err
		}
		if h.op >= OpClose {
			// Control frames are at most 125 bytes and never fragmented
			// (checked in readHeader), so they fit the buffer.
			p, err := c.next(int(h.length))
			if err != nil {
				return 0, nil, err
			}
			unmask(p, h.mask)
			if h.op == OpClose {
				err := closeErrorOf(p)
				c.release()
				return 0, nil, err
			}
			if c.OnControl != nil {
				c.OnControl(h.op, p)
			}
			c.release()
			continue
		}
		// A refused data frame's header is whole: Drain can skip its
		// payload and read on.
		switch {
		case h.op == OpContinuation && msgOp == 0:
			c.skip = h.length
			return 0, nil, &ProtocolError{StatusProtocolError, "continuation frame without a message"}
		case h.op != OpContinuation && msgOp != 0:
			c.skip = h.length
			return 0, nil, &ProtocolError{StatusProtocolError, "new message inside a fragmented one"}
		case h.length > int64(c.limit-len(c.msg)):
			c.skip = h.length
			return 0, nil, &ProtocolError{StatusMessageTooBig,
				fmt.Sprintf("message over %d bytes", c.limit)}
		case h.op != OpContinuation:
			msgOp = h.op
		}
		n := int(h.length) // fits: at most the limit
		if h.fin && len(c.msg) == 0 {
			// The common case: one frame, copied once into a slice of its
			// own size.
			p, err := c.readPayload(nil, n)
			if err != nil {
				return 0, nil, err
			}
			unmask(p, h.mask)
			c.release()
			if msgOp == OpText && !utf8.Valid(p) {
				return 0, nil, errNotUTF8()
			}
			return msgOp, p, nil
		}
		start := len(c.msg)
		if c.msg, err = c.readPayload(c.msg, n); err != nil {
			return 0, nil, err
		}
		unmask(c.msg[start:], h.mask)
		if msgOp == OpText && !c.checkText(h.fin) {
			c.release()
			return 0, nil, errNotUTF8()
		}
		if h.fin {
			p := c.msg
			c.msg = nil // the caller owns p now
			c.release()
			return msgOp, p, nil
		}
	}
}

func errNotUTF8() error {
	return &ProtocolError{StatusInvalidPayload, "text is not valid UTF-8"}
}

// checkText checks the text message assembled so far as each fragment
// arrives, so that invalid text fails at once rather than at its end: a
// fragment may end inside a character, which the next one completes, and
// the last one may not.
func (c *Conn) checkText(fin bool) bool {
	whole, ok := utf8Prefix(c.msg[c.valid:])
	c.valid += whole
	return ok && (!fin || c.valid == len(c.msg))
}

// utf8Prefix reports whether p can begin valid UTF-8, and how many of its
// bytes are whole characters: all but a last character cut short.
func utf8Prefix(p []byte) (whole int, ok bool) {
	whole = len(p)
	// The last character starts in the last UTFMax-1 bytes if it is cut.
	for i := len(p) - 1; i >= 0 && i >= len(p)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) { // a valid start, cut short
				whole = i
			}
			break
		}
	}
	return whole, utf8.Valid(p[:whole])
}

// payloadStep bounds what readPayload allocates ahead of the bytes that
// arrived: a client that announces a large frame and sends nothing must
// not cost the relay the frame's size.
const payloadStep = 64 << 10

// readPayload appends the next n bytes of the stream to dst.
func (c *Conn) readPayload(dst []byte, n int) ([]byte, error) {
	if dst == nil && n <= payloadStep {
		// Zeroed once here rather than again by an append.
		dst = make([]byte, n)
		return dst, c.readInto(dst)
	}
	for n > 0 {
		step := min(n, payloadStep)
		start := len(dst)
		dst = append(dst, make([]byte, step)...)
		if err := c.readInto(dst[start:]); err != nil {
			return dst, err
		}
		n -= step
	}
	return dst, nil
}

type header struct {
	fin    bool
	op     Opcode
	length int64
	mask   [4]byte
}

func (c *Conn) readHeader() (header, error) {
	var h header
	b, err := c.next(2)
	if err != nil {
		return h, err
	}
	h.fin = b[0]&0x80 != 0
	rsv := b[0] & 0x70
	h.op = Opcode(b[0] & 0x0f)
	masked := b[1]&0x80 != 0
	l := int64(b[1] & 0x7f)
	var why string
	switch {
	case rsv != 0:
		why = "reserved bits set without an extension"
	case !masked:
		why = "client frame not masked"
	case h.op > OpBinary && h.op < OpClose || h.op > OpPong:
		why = fmt.Sprintf("unknown opcode %d", h.op)
	case h.op >= OpClose && (!h.fin || l > 125):
		why = "control frame fragmented or over 125 bytes"
	}
	if why != "" {
		c.lost = true
		return h, &ProtocolError{StatusProtocolError, why}
	}
	switch l {
	case 126:
		b, err := c.next(2)
		if err != nil {
			return h, err
		}
		l = int64(b[0])<<8 | int64(b[1])
	case 127:
		b, err := c.next(8)
		if err != nil {
			return h, err
		}
		u := binary.BigEndian.Uint64(b)
		if u>>63 != 0 {
			c.lost = true
			return h, &ProtocolError{StatusProtocolError, "frame length with its most significant bit set"}
		}
		l = int64(u)
	}
	h.length = l
	m, err := c.next(4)
	if err != nil {
		return h, err
	}
	copy(h.mask[:], m)
	return h, nil
}

// next returns the next n (at most bufSize) bytes, reading as needed. They
// are valid until the next read.
func (c *Conn) next(n int) ([]byte, error) {
	for c.w-c.r < n {
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
	p := (*c.rbuf)[c.r : c.r+n]
	c.r += n
	return p, nil
}

// readInto fills p from the buffered bytes, then straight from the network.
func (c *Conn) readInto(p []byte) error {
	if c.rbuf != nil {
		k := copy(p, (*c.rbuf)[c.r:c.w])
		c.r += k
		p = p[k:]
	}
	if len(p) == 0 {
		return nil
	}
	if len(c.pre) > 0 {
		k := copy(p, c.pre)
		c.pre = c.pre[k:]
		p = p[k:]
	}
	_, err := io.ReadFull(c.nc, p)
	return noEOF(err)
}

// fill reads more bytes into the buffer. With the buffer empty it waits in
// the poller without holding one.
func (c *Conn) fill() error {
	if c.rbuf != nil && c.r > 0 {
		// Keep the unread bytes at the front.
		k := copy(*c.rbuf, (*c.rbuf)[c.r:c.w])
		c.r, c.w = 0, k
	}
	if len(c.pre) > 0 {
		if c.rbuf == nil {
			c.rbuf = c.bufs.get()
			c.r, c.w = 0, 0
		}
		k := copy((*c.rbuf)[c.w:], c.pre)
		c.pre = c.pre[k:]
		c.w += k
		return nil
	}
	if c.rbuf == nil {
		return c.waitAndRead()
	}
	n, err := c.nc.Read((*c.rbuf)[c.w:])
	c.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return noEOF(err)
}

// waitPortable waits for the next bytes without a buffer where the
// network poller cannot be asked (see read_unix.go): a blocking read of
// one byte into the Conn itself, then a buffer is taken for it and what
// follows. It costs a second read per wake-up.
func (c *Conn) waitPortable() error {
	n, err := c.nc.Read(c.wake[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return noEOF(err)
	}
	c.rbuf = c.bufs.get()
	(*c.rbuf)[0] = c.wake[0]
	c.r, c.w = 0, 1
	return nil
}

// release gives the read buffer back to the pool once every byte in it has
// been consumed, so an idle connection holds none.
func (c *Conn) release() {
	if c.rbuf != nil && c.r == c.w {
		c.bufs.put(c.rbuf)
		c.rbuf, c.r, c.w = nil, 0, 0
	}
}

// noEOF turns an EOF in the middle of the stream into what it is: a
// connection closed without a close frame.
func noEOF(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	return err
}

// unmask undoes a client's masking (RFC 6455 section 5.3) in place, eight
// bytes at a time: the key repeats every four bytes, so a word of eight
// is XORed with the key twice over.
func unmask(p []byte, key [4]byte) {
	if len(p) >= 8 {
		k := uint64(binary.LittleEndian.Uint32(key[:]))
		k |= k << 32
		for len(p) >= 32 {
			binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k)
			binary.LittleEndian.PutUint64(p[8:], binary.LittleEndian.Uint64(p[8:])^k)
			binary.LittleEndian.PutUint64(p[16:], binary.LittleEndian.Uint64(p[16:])^k)
			binary.LittleEndian.PutUint64(p[24:], binary.LittleEndian.Uint64(p[24:])^k)
			p = p[32:]
		}
		for len(p) >= 8 {
			binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k)
			p = p[8:]
		}
	}
	// What is left starts at a multiple of 8, where the key starts over.
	for i := range p {
		p[i] ^= key[i&3]
	}
}

func closeErrorOf(p []byte) error {
	if len(p) == 0 {
		return &CloseError{Code: StatusNoStatusRcvd}
	}
	if len(p) == 1 {
		return &ProtocolError{StatusProtocolError, "close frame with a 1-byte payload"}
	}
	code := StatusCode(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) {
		return &ProtocolError{StatusProtocolError, fmt.Sprintf("invalid close code %d", code)}
	}
	if !utf8.Valid(p[2:]) {
		return &ProtocolError{StatusInvalidPayload, "close reason is not valid UTF-8"}
	}
	return &CloseError{Code: code, Reason: string(p[2:])}
}

// validCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 section 7.4 and the IANA registry): 1004 is reserved, 1005,
// 1006 and 1015 are for reporting only, the rest below 3000 unassigned,
// 3000-3999 registered and 4000-4999 private.
func validCloseCode(code StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	}
	return code >= 3000 && code <= 4999
}

// AppendFrame appends one unfragmented, unmasked frame to dst whose payload
// is the concatenation of parts, so a shared body needs no copy first.
func AppendFrame(dst []byte, op Opcode, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	dst = append(dst, 0x80|byte(op))
	switch {
	case n < 126:
		dst = append(dst, byte(n))
	case n <= 0xffff:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127, byte(uint64(n)>>56), byte(uint64(n)>>48), byte(uint64(n)>>40),
			byte(uint64(n)>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst
}

// ClosePayload is the payload of a close frame with code and reason, the
// reason cut to fit a control frame.
func ClosePayload(code StatusCode, reason string) []byte {
	if len(reason) > 123 {
		// Cut at a character boundary: the reason must stay UTF-8.
		i := 123
		for i > 0 && !utf8.RuneStart(reason[i]) {
			i--
		}
		reason = reason[:i]
	}
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

// AppendClose appends a close frame with code and reason.
func AppendClose(dst []byte, code StatusCode, reason string) []byte {
	return AppendFrame(dst, OpClose, ClosePayload(code, reason))
}
