package wsconn

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// readPath is how a test server's connections wait for bytes: in the
// network poller (read_unix.go), or with the portable one-byte read of
// platforms without it, taken here over the same real socket.
type readPath string

const (
	pollerPath   readPath = "poller"
	portablePath readPath = "portable"
)

var readPaths = []readPath{pollerPath, portablePath}

// portableConn hides the socket's syscall.Conn, which makes wsconn take
// its portable read path.
type portableConn struct{ net.Conn }

type portableListener struct{ net.Listener }

func (l portableListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return portableConn{c}, nil
}

// newServer starts a real HTTP server on loopback whose connections take
// the read path p.
func newServer(t *testing.T, p readPath, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if p == portablePath {
		srv.Listener = portableListener{srv.Listener}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// echoServer upgrades every request and echoes each message back with its
// type, answering pings and echoing the client's close code; it reports
// how each connection's read ended.
func echoServer(t *testing.T, limit int) (url string, ended chan error) {
	return echoServerVia(t, pollerPath, limit)
}

func echoServerVia(t *testing.T, path readPath, limit int) (url string, ended chan error) {
	t.Helper()
	ended = make(chan error, 16)
	u := &Upgrader{Limit: limit}
	srv := newServer(t, path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r)
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var wmu sync.Mutex
			send := func(b []byte) {
				wmu.Lock()
				defer wmu.Unlock()
				c.Write(b, 5*time.Second)
			}
			c.OnControl = func(op Opcode, p []byte) {
				if op == OpPing {
					send(AppendFrame(nil, OpPong, p))
				}
			}
			for {
				op, p, err := c.ReadMessage()
				if err != nil {
					var ce *CloseError
					var pe *ProtocolError
					switch {
					case errors.As(err, &ce) && ce.Code == StatusNoStatusRcvd:
						send(AppendFrame(nil, OpClose)) // 1005 is never sent
					case errors.As(err, &ce):
						send(AppendClose(nil, ce.Code, ""))
					case errors.As(err, &pe):
						send(AppendClose(nil, pe.Code, pe.Reason))
						ended <- err
						// Long: a drain must end at the client's close
						// frame or EOF, not wait this out.
						c.Drain(time.Minute)
						return
					}
					ended <- err
					return
				}
				send(AppendFrame(nil, op, p))
			}
		}()
	}))
	return "ws" + strings.TrimPrefix(srv.URL, "http"), ended
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 22)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func TestEchoSizesAndPing(t *testing.T) {
	for _, path := range readPaths {
		t.Run(string(path), func(t *testing.T) { testEchoSizesAndPing(t, path) })
	}
}

func testEchoSizesAndPing(t *testing.T, path readPath) {
	url, _ := echoServerVia(t, path, 1<<21)
	c := dial(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Sizes on both sides of each length encoding and of the read buffer.
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, bufSize - 1, bufSize, bufSize + 7, 1 << 20} {
		msg := bytes.Repeat([]byte{byte('a' + n%26)}, n)
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if typ != websocket.MessageText || !bytes.Equal(got, msg) {
			t.Fatalf("size %d: echo differs (%d bytes back)", n, len(got))
		}
	}
	// coder/websocket's Ping waits for our pong, which needs a reader.
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

func TestFragmentedMessage(t *testing.T) {
	url, _ := echoServer(t, 1<<20)
	c := dial(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := c.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := range 5 {
		part := bytes.Repeat([]byte{byte('0' + i)}, 3000*i)
		want = append(want, part...)
		if _, err := w.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.Read(ctx)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("fragmented echo: %d bytes, err %v; want %d bytes", len(got), err, len(want))
	}
}

func TestOversizedMessageClosesWith1009(t *testing.T) {
	url, ended := echoServer(t, 1000)
	c := dial(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, make([]byte, 1001)); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("read after oversized message: %v, want close 1009", err)
	}
	var pe *ProtocolError
	if err := <-ended; !errors.As(err, &pe) || pe.Code != StatusMessageTooBig {
		t.Fatalf("server read ended with %v", err)
	}
}

func TestClientCloseIsReported(t *testing.T) {
	url, ended := echoServer(t, 1000)
	c := dial(t, url)
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	var ce *CloseError
	if err := <-ended; !errors.As(err, &ce) || ce.Code != StatusNormalClosure || ce.Reason != "bye" {
		t.Fatalf("server read ended with %v", err)
	}
}

// rawDial performs the handshake by hand and sends extra right behind it
// in the same write, as eager clients do.
func rawDial(t *testing.T, url string, extra []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(url, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write(append([]byte(req), extra...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The example key and answer of RFC 6455 section 1.3.
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	return nc, br
}

// clientFrame builds a masked client frame.
func clientFrame(fin bool, op Opcode, payload []byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	key := [4]byte{1, 2, 3, 4}
	out = append(out, key[:]...)
	p := append([]byte(nil), payload...)
	unmask(p, key)
	return append(out, p...)
}

// readServerFrame reads one unmasked frame from the server.
func readServerFrame(t *testing.T, br *bufio.Reader) (Opcode, []byte) {
	t.Helper()
	op, p, err := readFrame(br)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return op, p
}

// readFrame reads one frame from the server, which must be unfragmented
// and unmasked, as wsconn writes them.
func readFrame(br *bufio.Reader) (Opcode, []byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0xf0 != 0x80 || h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("server frame header %#x %#x: fragmented, reserved bits or masked", h[0], h[1])
	}
	n := uint64(h[1] & 0x7f)
	var ext [8]byte
	switch n {
	case 126:
		if _, err := io.ReadFull(br, ext[:2]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:2]))
	case 127:
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > 1<<24 {
		return 0, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		return 0, nil, err
	}
	return Opcode(h[0] & 0x0f), p, nil
}

func TestBytesSentWithTheHandshakeAreRead(t *testing.T) {
	url, _ := echoServer(t, 1<<20)
	// Two messages and a ping interleaved in a fragmented one, all in the
	// handshake's write.
	var extra []byte
	extra = append(extra, clientFrame(true, OpText, []byte(`["REQ","a",{}]`))...)
	extra = append(extra, clientFrame(false, OpText, []byte(`["CLOSE",`))...)
	extra = append(extra, clientFrame(true, OpPing, []byte("hi"))...)
	extra = append(extra, clientFrame(true, OpContinuation, []byte(`"a"]`))...)
	_, br := rawDial(t, url, extra)
	want := []struct {
		op Opcode
		p  string
	}{{OpText, `["REQ","a",{}]`}, {OpPong, "hi"}, {OpText, `["CLOSE","a"]`}}
	for _, w := range want {
		op, p := readServerFrame(t, br)
		if op != w.op || string(p) != w.p {
			t.Fatalf("got op %d %q, want op %d %q", op, p, w.op, w.p)
		}
	}
}

func TestAppendCloseKeepsReasonUTF8(t *testing.T) {
	reason := strings.Repeat("é", 100) // 200 bytes
	f := AppendClose(nil, StatusPolicyViolation, reason)
	if len(f)-2 > 125 {
		t.Fatalf("close payload %d bytes", len(f)-2)
	}
	if r := string(f[4:]); !strings.HasPrefix(reason, r) || len(r)%2 != 0 {
		t.Fatalf("reason cut inside a character: %q", r)
	}
}

// After an oversized message the server reads the rest of it, so the
// client, still sending, gets the close frame and a clean end instead of a
// reset connection.
func TestDrainAfterOversizedMessage(t *testing.T) {
	url, ended := echoServer(t, 1000)
	payload := bytes.Repeat([]byte("x"), 200_000)
	frame := clientFrame(true, OpText, payload)
	nc, br := rawDial(t, url, frame[:100_000])
	time.Sleep(50 * time.Millisecond) // the server has refused the message by now
	if _, err := nc.Write(frame[100_000:]); err != nil {
		t.Fatalf("rest of the message: %v", err)
	}
	op, p := readServerFrame(t, br)
	if op != OpClose || StatusCode(binary.BigEndian.Uint16(p)) != StatusMessageTooBig {
		t.Fatalf("got op %d %q, want close 1009", op, p)
	}
	var pe *ProtocolError
	if err := <-ended; !errors.As(err, &pe) || pe.Code != StatusMessageTooBig {
		t.Fatalf("server read ended with %v", err)
	}
	// A message after the oversized one is read and dropped too; then our
	// close ends the drain and the server closes cleanly.
	if _, err := nc.Write(append(clientFrame(true, OpText, []byte("late")), clientFrame(true, OpClose, []byte{0x03, 0xe8})...)); err != nil {
		t.Fatalf("close: %v", err)
	}
	// rawDial's 5 s deadline turns a drain that ignores the close frame
	// into a timeout here.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the close handshake: %v, want EOF", err)
	}
}

// unmask works eight bytes at a time; every length and every tail must
// come out as the byte-at-a-time definition of RFC 6455 section 5.3.
func TestUnmaskMatchesDefinition(t *testing.T) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for n := range 300 {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i*7 + n)
		}
		want := append([]byte(nil), p...)
		for i := range want {
			want[i] ^= key[i%4]
		}
		unmask(p, key)
		if !bytes.Equal(p, want) {
			t.Fatalf("length %d: unmasked differently", n)
		}
	}
}

// A connection waiting for its client holds no read buffer, on either read
// path: a relay keeps thousands of them (docs/architecture.md). Both ends
// of each connection are in this process, so the figure is an upper bound
// of the server's share.
func TestIdleConnectionsHoldNoBuffer(t *testing.T) {
	for _, path := range readPaths {
		t.Run(string(path), func(t *testing.T) {
			url, _ := echoServerVia(t, path, 1<<20)
			heap := func() uint64 {
				runtime.GC()
				runtime.GC() // and sync.Pool's victims
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				return m.HeapAlloc
			}
			const n = 200
			msg := clientFrame(true, OpText, bytes.Repeat([]byte("x"), 100))
			conns := make([]net.Conn, 0, n)
			before := heap()
			for range n {
				// Each server side reads one message, echoes it, and waits.
				nc, br := rawDial(t, url, msg)
				if op, p := readServerFrame(t, br); op != OpText || len(p) != 100 {
					t.Fatalf("echo: op %d, %d bytes", op, len(p))
				}
				conns = append(conns, nc)
			}
			per := (int64(heap()) - int64(before)) / n
			runtime.KeepAlive(conns)
			t.Logf("%s: heap per idle connection, both ends: %d bytes", path, per)
			if per >= bufSize/2 {
				t.Errorf("heap per idle connection %d bytes: a read buffer (%d) is held while waiting", per, bufSize)
			}
		})
	}
}

// A client that stops reading makes writes fail once the socket's buffers
// are full and the deadline passes, though Write moves the deadline only
// now and then.
func TestWriteToStalledClientFails(t *testing.T) {
	c, _, _ := upgradedPair(t, 1<<20)
	msg := AppendFrame(nil, OpText, make([]byte, 64<<10))
	done := make(chan error, 1)
	go func() {
		for {
			if err := c.Write(msg, 200*time.Millisecond); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("write failed with %v, want a timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("writes to a client that reads nothing never failed")
	}
}
