package wsconn

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// upgradedPair returns the server side of a websocket over a real loopback
// TCP socket and the raw client socket, handshake done.
func upgradedPair(tb testing.TB, limit int) (*Conn, net.Conn, *bufio.Reader) {
	tb.Helper()
	conns := make(chan *Conn, 1)
	u := &Upgrader{Limit: limit}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := u.Upgrade(w, r); err == nil {
			conns <- c
		}
	}))
	tb.Cleanup(srv.Close)
	nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("handshake: %v %v", resp, err)
	}
	select {
	case c := <-conns:
		tb.Cleanup(func() { c.Close() })
		return c, nc, br
	case <-time.After(10 * time.Second):
		tb.Fatal("no upgraded connection")
		return nil, nil, nil
	}
}

// BenchmarkReadMessage reads text messages of one size that a client sends
// in batches of about 64 KiB, as a busy client would, over loopback TCP.
func BenchmarkReadMessage(b *testing.B) {
	for _, size := range []int{64, 512, 4096, 65536} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			c, nc, _ := upgradedPair(b, 1<<20)
			frame := clientFrame(true, OpText, []byte(strings.Repeat("x", size)))
			per := max(1, 64<<10/len(frame))
			var batch []byte
			for range per {
				batch = append(batch, frame...)
			}
			go func() {
				for sent := 0; sent < b.N; sent += per {
					if _, err := nc.Write(batch); err != nil {
						return
					}
				}
			}()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, _, err := c.ReadMessage(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnmask(b *testing.B) {
	for _, size := range []int{16, 125, 512, 4096, 65536} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			p := make([]byte, size)
			b.SetBytes(int64(size))
			for range b.N {
				unmask(p, [4]byte{1, 2, 3, 4})
			}
		})
	}
}

// BenchmarkWrite writes one framed 600-byte event message per call, as the
// fan-out does to each subscriber, to a client that reads everything.
func BenchmarkWrite(b *testing.B) {
	c, nc, _ := upgradedPair(b, 1<<20)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := nc.Read(buf); err != nil {
				return
			}
		}
	}()
	msg := AppendFrame(nil, OpText, []byte(strings.Repeat("x", 600)))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Write(msg, 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
