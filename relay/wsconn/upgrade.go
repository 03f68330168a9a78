package wsconn

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// handshakeTimeout bounds writing the 101 answer.
const handshakeTimeout = 10 * time.Second

// Upgrader turns HTTP requests into websockets. Its connections share a
// pool of read buffers. The zero value is ready to use, with no limit on a
// message's size.
type Upgrader struct {
	// Limit is the largest message a connection reads (0: none).
	Limit int

	bufs bufPool
}

// Upgrade answers a client's websocket handshake and takes over its
// connection. When it fails it has already answered the request with an
// HTTP error.
func (u *Upgrader) Upgrade(w http.ResponseWriter, r *http.Request) (*Conn, error) {
	return u.UpgradeLimit(w, r, u.Limit)
}

// UpgradeLimit is Upgrade with a limit of its own for this connection (0:
// none) instead of u.Limit, for a server whose limit changes while it runs.
func (u *Upgrader) UpgradeLimit(w http.ResponseWriter, r *http.Request, limit int) (*Conn, error) {
	key, status, err := checkHandshake(r)
	if err != nil {
		switch status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", http.MethodGet)
		case http.StatusUpgradeRequired:
			// RFC 9110 section 15.5.22 and RFC 6455 section 4.4.
			w.Header().Set("Upgrade", "websocket")
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		http.Error(w, err.Error(), status)
		return nil, err
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		err := fmt.Errorf("websocket upgrade: %T cannot be taken over (HTTP/2?)", w)
		http.Error(w, "websockets need HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return nil, err
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		http.Error(w, "websocket upgrade failed", http.StatusInternalServerError)
		return nil, fmt.Errorf("websocket upgrade: hijack: %w", err)
	}
	// A client may send its first frames right behind the handshake; the
	// HTTP server may have read them already. Keep those bytes and let the
	// bufio buffers go: an idle connection should hold no buffer.
	var pre []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		pre = append([]byte(nil), b...)
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		acceptKey(key) + "\r\n\r\n"
	nc.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	if _, err := nc.Write([]byte(resp)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("websocket upgrade: write answer: %w", err)
	}
	// The HTTP server may have left deadlines on the connection.
	nc.SetDeadline(time.Time{})
	if limit <= 0 {
		limit = math.MaxInt
	}
	return newConn(nc, pre, limit, &u.bufs), nil
}

// checkHandshake returns the client's key, or the HTTP status and reason
// for refusing the request (RFC 6455 section 4.2.1; headers that must
// come once, section 11.3).
func checkHandshake(r *http.Request) (key string, status int, err error) {
	version := r.Header.Values("Sec-WebSocket-Version")
	keys := r.Header.Values("Sec-WebSocket-Key")
	switch {
	case r.Method != http.MethodGet:
		return "", http.StatusMethodNotAllowed, fmt.Errorf("websocket handshake: method %s, want GET", r.Method)
	case !r.ProtoAtLeast(1, 1):
		return "", http.StatusBadRequest, fmt.Errorf("websocket handshake: %s, want HTTP/1.1 or later", r.Proto)
	case !HeaderHasToken(r.Header, "Connection", "upgrade") || !HeaderHasToken(r.Header, "Upgrade", "websocket"):
		return "", http.StatusUpgradeRequired, fmt.Errorf("websocket handshake: not an upgrade to websocket")
	case len(version) > 1:
		return "", http.StatusBadRequest, fmt.Errorf("websocket handshake: Sec-WebSocket-Version sent %d times", len(version))
	case len(version) == 0 || strings.TrimSpace(version[0]) != "13":
		return "", http.StatusUpgradeRequired, fmt.Errorf("websocket handshake: version %q, want 13", strings.Join(version, ""))
	case len(keys) != 1:
		return "", http.StatusBadRequest, fmt.Errorf("websocket handshake: Sec-WebSocket-Key sent %d times, want once", len(keys))
	}
	key = strings.TrimSpace(keys[0])
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		return "", http.StatusBadRequest, fmt.Errorf("websocket handshake: invalid Sec-WebSocket-Key %q", key)
	}
	return key, 0, nil
}

// acceptKey is the Sec-WebSocket-Accept answer to key.
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// HeaderHasToken reports whether a comma-separated header holds token,
// ignoring case.
func HeaderHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
