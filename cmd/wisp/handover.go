package main

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// freshConns counts the HTTP connections accepted whose first request has
// not been read yet (http.StateNew). An upgrade must let each of them be
// answered before http.Server.Shutdown: Shutdown closes, unanswered, a
// connection whose request it reads after it began.
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	empty chan struct{} // closed when conns is empty, once waited on
}

// hook is the http.Server's ConnState.
func (f *freshConns) hook(c net.Conn, s http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s == http.StateNew {
		if f.conns == nil {
			f.conns = map[net.Conn]struct{}{}
		}
		f.conns[c] = struct{}{}
		return
	}
	delete(f.conns, c)
	if len(f.conns) == 0 && f.empty != nil {
		close(f.empty)
		f.empty = nil
	}
}

// wait returns once every connection counted has had its request read
// (or closed), or when ctx ends. No connection may be accepted meanwhile.
func (f *freshConns) wait(ctx context.Context) {
	f.mu.Lock()
	if len(f.conns) == 0 {
		f.mu.Unlock()
		return
	}
	empty := make(chan struct{})
	f.empty = empty
	f.mu.Unlock()
	select {
	case <-empty:
	case <-ctx.Done():
	}
}

// handOverHTTP stops srv for an upgrade without refusing a connection: the
// listener closes (the successor accepts on the same socket), every
// connection accepted gets its request read and answered (a websocket is
// handed to the relay), and only then does Shutdown close what is idle and
// wait for what is active. serveErr is srv.Serve's result.
func handOverHTTP(ctx context.Context, srv *http.Server, ln net.Listener, serveErr <-chan error, fresh *freshConns) error {
	srv.SetKeepAlivesEnabled(false) // what is answered from now on closes after its answer
	ln.Close()
	select {
	case <-serveErr: // Serve has counted every connection it accepted
	case <-ctx.Done():
	}
	fresh.wait(ctx)
	return srv.Shutdown(ctx)
}
