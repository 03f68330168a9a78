//go:build unix

package wsconn

import (
	"io"
	"syscall"
)

// poller waits for a socket to become readable in Go's network poller
// without holding a read buffer: syscall.RawConn.Read calls tryRead, which
// takes a buffer only for a read that returns bytes.
type poller struct {
	rc syscall.RawConn // nil when the connection is not a socket
	fn func(fd uintptr) bool

	// tryRead's results.
	buf *[]byte
	n   int
	err error
}

func (c *Conn) initPoller() {
	if sc, ok := c.nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.poll.rc = rc
			// Made once per connection: a closure per read would allocate.
			c.poll.fn = c.tryRead
		}
	}
}

// waitAndRead parks in the network poller until the socket is readable,
// and only then takes a buffer and reads.
func (c *Conn) waitAndRead() error {
	p := &c.poll
	if p.rc == nil {
		return c.waitPortable()
	}
	p.buf, p.n, p.err = nil, 0, nil
	err := p.rc.Read(p.fn)
	buf, n := p.buf, p.n
	p.buf = nil
	if err == nil {
		err = p.err
	}
	if err != nil || n <= 0 {
		if buf != nil {
			c.bufs.put(buf)
		}
		if err == nil {
			err = io.EOF
		}
		return noEOF(err)
	}
	c.rbuf, c.r, c.w = buf, 0, n
	return nil
}

// tryRead is waitAndRead's callback: a non-blocking read, reporting false
// (wait for readiness, then call again) when there is nothing to read.
func (c *Conn) tryRead(fd uintptr) bool {
	buf := c.bufs.get()
	var n int
	var err error
	for {
		n, err = syscall.Read(int(fd), *buf)
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.EAGAIN {
		c.bufs.put(buf)
		return false
	}
	c.poll.buf, c.poll.n, c.poll.err = buf, n, err
	return true
}
