//go:build !unix

package wsconn

// poller is empty where Go's RawConn cannot do a non-blocking read through
// the syscall package (Windows sockets are overlapped handles, Plan 9 has
// no EAGAIN): those platforms wait with waitPortable.
type poller struct{}

func (c *Conn) initPoller() {}

func (c *Conn) waitAndRead() error { return c.waitPortable() }
