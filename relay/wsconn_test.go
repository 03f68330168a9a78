package relay_test

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A text message that is not UTF-8 never reaches the relay's handler: the
// relay answers nothing, closes with 1007, and keeps serving others.
func TestTextNotUTF8ClosesWith1007(t *testing.T) {
	tr := startRelay(t)
	bad := dial(t, tr.url)
	bad.sendRaw("[\"REQ\",\"sub\xff\",{}]")
	select {
	case <-bad.done:
	case <-time.After(10 * time.Second):
		t.Fatal("text that is not UTF-8 did not close the connection")
	}
	if code := websocket.CloseStatus(bad.closeErr); code != websocket.StatusInvalidFramePayloadData {
		t.Errorf("close status %v (%v), want 1007", code, bad.closeErr)
	}
	if len(bad.in) > 0 {
		t.Errorf("the relay handled the message: it answered %s", join(<-bad.in))
	}
	other := dial(t, tr.url)
	other.mustPublish(newKey(t).sign(t, 1, now(), "still serving"))
}

// A close frame with a code a peer may not send is a protocol error: the
// relay closes with 1002 rather than echoing it.
func TestInvalidCloseCodeClosesWith1002(t *testing.T) {
	tr := startRelay(t)
	for _, code := range []uint16{999, 1005, 1006, 2999, 5000} {
		nc, br := rawWebsocket(t, tr.url)
		// A masked close frame with an all-zero key: the payload as is.
		frame := append([]byte{0x88, 0x80 | 2, 0, 0, 0, 0}, byte(code>>8), byte(code))
		if _, err := nc.Write(frame); err != nil {
			t.Fatal(err)
		}
		var h [4]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatalf("close %d: reading the answer: %v", code, err)
		}
		if h[0] != 0x88 || h[1] < 2 || binary.BigEndian.Uint16(h[2:]) != 1002 {
			t.Errorf("close %d: answered with frame % x, want close 1002", code, h)
		}
		nc.Close()
	}
}

// rawWebsocket opens a websocket by hand, for frames a client library
// would refuse to send.
func rawWebsocket(t *testing.T, url string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(url, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return nc, br
}
