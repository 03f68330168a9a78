package wsconn

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHandshake sends opening handshakes by hand over a real socket (an
// HTTP client would not send HTTP/1.0 or a header twice) and checks the
// answer against RFC 6455 section 4.2.
func TestHandshake(t *testing.T) {
	srv := newServer(t, pollerPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := (&Upgrader{Limit: 100}).Upgrade(w, r); err == nil {
			c.Close()
		}
	}))
	addr := strings.TrimPrefix(srv.URL, "http://")
	const (
		key     = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		version = "Sec-WebSocket-Version: 13\r\n"
		upgrade = "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
	)
	for _, tc := range []struct {
		name    string
		request string // the request line and headers but Host
		status  int
		headers map[string]string // wanted in the answer
	}{
		{"valid", "GET / HTTP/1.1\r\n" + upgrade + key + version, http.StatusSwitchingProtocols,
			map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}},
		{"POST", "POST / HTTP/1.1\r\nContent-Length: 0\r\n" + upgrade + key + version, http.StatusMethodNotAllowed,
			map[string]string{"Allow": "GET"}},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n" + upgrade + key + version, http.StatusBadRequest, nil},
		{"not an upgrade", "GET / HTTP/1.1\r\n" + key + version, http.StatusUpgradeRequired,
			map[string]string{"Upgrade": "websocket", "Sec-WebSocket-Version": "13"}},
		{"upgrade to something else", "GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n" + key + version, http.StatusUpgradeRequired,
			map[string]string{"Sec-WebSocket-Version": "13"}},
		{"version 8", "GET / HTTP/1.1\r\n" + upgrade + key + "Sec-WebSocket-Version: 8\r\n", http.StatusUpgradeRequired,
			map[string]string{"Sec-WebSocket-Version": "13"}},
		{"no version", "GET / HTTP/1.1\r\n" + upgrade + key, http.StatusUpgradeRequired,
			map[string]string{"Sec-WebSocket-Version": "13"}},
		{"version twice", "GET / HTTP/1.1\r\n" + upgrade + key + version + version, http.StatusBadRequest, nil},
		{"key twice", "GET / HTTP/1.1\r\n" + upgrade + key + "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n" + version,
			http.StatusBadRequest, nil},
		{"no key", "GET / HTTP/1.1\r\n" + upgrade + version, http.StatusBadRequest, nil},
		{"key not base64", "GET / HTTP/1.1\r\n" + upgrade + "Sec-WebSocket-Key: not base64 at all!!!!\r\n" + version,
			http.StatusBadRequest, nil},
		{"key of 15 bytes", "GET / HTTP/1.1\r\n" + upgrade + "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n" + version,
			http.StatusBadRequest, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(5 * time.Second))
			req := strings.Replace(tc.request, "\r\n", "\r\nHost: x\r\n", 1) + "\r\n"
			if _, err := nc.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			for k, v := range tc.headers {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}
