package relay

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitUntil polls cond until it holds, or fails the test after 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A writer parks once its outbox is written, and the next outbox that
// needs one runs on it instead of on a new goroutine.
func TestWriterPoolReusesParkedWriters(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	p := newWriterPool(2, done)
	sock := newFakeSocket()
	io := sock.io()
	io.writers = p
	for i, s := range []string{"a", "b", "c"} {
		o := newOutbox(1000, io)
		o.offer(text(s))
		o.wait()
		waitUntil(t, "the writer parks", func() bool { return p.idle.Load() == 1 })
		if n := p.live.Load(); n != 1 {
			t.Fatalf("after outbox %d: %d writers, want the one reused", i, n)
		}
	}
	if got := sock.written(); len(got) != 3 || got[2].payload != "c" {
		t.Fatalf("written %v", got)
	}
}

// However many writers ran at once, no more than maxIdle stay parked, and
// the relay's shutdown ends those.
func TestWriterPoolBoundsParkedWriters(t *testing.T) {
	done := make(chan struct{})
	p := newWriterPool(2, done)
	sock := newFakeSocket()
	release := sock.hold()
	io := sock.io()
	io.writers = p
	var outs []*outbox
	for range 5 {
		o := newOutbox(1000, io)
		o.offer(text("x"))
		outs = append(outs, o)
	}
	if n := p.live.Load(); n != 5 {
		t.Fatalf("%d writers for 5 held outboxes, want 5", n)
	}
	release()
	for _, o := range outs {
		o.wait()
	}
	waitUntil(t, "all but two writers leave", func() bool { return p.live.Load() == 2 && p.idle.Load() == 2 })
	if got := sock.written(); len(got) != 5 {
		t.Fatalf("written %v", got)
	}
	close(done)
	waitUntil(t, "parked writers leave at shutdown", func() bool { return p.live.Load() == 0 })
}

// One live event to 64 subscribers over loopback TCP: each outbox gets a
// frame and writes it, on a new goroutine each time or on a parked writer.
func BenchmarkFanoutWrites(b *testing.B) {
	const conns = 64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var socks []net.Conn
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		go io.Copy(io.Discard, c) //nolint:errcheck // drains until closed
		defer c.Close()
		defer s.Close()
		socks = append(socks, s)
	}
	body := []byte(`{"id":"` + strings.Repeat("a", 64) + `","content":"` + strings.Repeat("x", 200) + `"}`)
	for _, parked := range []bool{false, true} {
		name := "goroutine"
		if parked {
			name = "parked"
		}
		b.Run(name, func(b *testing.B) {
			done := make(chan struct{})
			defer close(done)
			var pool *writerPool
			if parked {
				pool = newWriterPool(parkedWriters, done)
			}
			bufs := &sync.Pool{}
			outs := make([]*outbox, conns)
			for i, s := range socks {
				outs[i] = newOutbox(1<<20, outboxIO{
					write:     func(buf []byte) error { _, err := s.Write(buf); return err },
					closeSent: func() {},
					failed:    func() { b.Error("write failed") },
					sent:      func(frame) {},
					bufs:      bufs,
					writers:   pool,
				})
			}
			for b.Loop() {
				for _, o := range outs {
					o.offer(frame{head: []byte(`["EVENT","f",`), body: body, tail: tailBracket})
				}
				for _, o := range outs {
					o.wait()
				}
			}
		})
	}
}
