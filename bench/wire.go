package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

const (
	// readLimit is the largest message the tool accepts from a relay;
	// coder/websocket's default (32 KiB) is smaller than a big event.
	readLimit = 16 << 20
	// dialTimeout bounds one websocket handshake.
	dialTimeout = 15 * time.Second
	// infoTimeout bounds the NIP-11 request.
	infoTimeout = 5 * time.Second
)

// dial opens a websocket to the relay.
func dial(ctx context.Context, url string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	ws.SetReadLimit(readLimit)
	return ws, nil
}

// reqMessage is ["REQ",<sub>,<filter>].
func reqMessage(sub string, f nostr.Filter) ([]byte, error) {
	fj, err := f.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode filter: %w", err)
	}
	sj, _ := json.Marshal(sub) // a string always marshals
	msg := append([]byte(`["REQ",`), sj...)
	msg = append(msg, ',')
	msg = append(msg, fj...)
	return append(msg, ']'), nil
}

// closeMessage is ["CLOSE",<sub>].
func closeMessage(sub string) []byte {
	b, _ := json.Marshal([]string{"CLOSE", sub}) // strings always marshal
	return b
}

// parseMessage decodes a relay message. Parse failures are reported, not
// fatal: a relay that sends garbage gets counted, not trusted.
func parseMessage(p nostr.MessageParser, data []byte) (nostr.Envelope, error) {
	env, err := p.ParseMessage(string(data))
	if err != nil {
		return nil, fmt.Errorf("parse relay message %.80q: %w", data, err)
	}
	return env, nil
}

// RelayInfo is what the relay says about itself in its NIP-11 document.
type RelayInfo struct {
	Name     string `json:"name,omitempty"`
	Software string `json:"software,omitempty"`
	Version  string `json:"version,omitempty"`
}

// fetchInfo asks the relay for its NIP-11 document, best effort: any
// failure is returned for a warning.
func fetchInfo(ctx context.Context, wsURL string) (RelayInfo, error) {
	var info RelayInfo
	httpURL := wsURL
	switch {
	case strings.HasPrefix(wsURL, "ws://"):
		httpURL = "http://" + wsURL[len("ws://"):]
	case strings.HasPrefix(wsURL, "wss://"):
		httpURL = "https://" + wsURL[len("wss://"):]
	}
	ctx, cancel := context.WithTimeout(ctx, infoTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpURL, nil)
	if err != nil {
		return info, fmt.Errorf("nip-11 request: %w", err)
	}
	req.Header.Set("Accept", "application/nostr+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return info, fmt.Errorf("nip-11 request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return info, fmt.Errorf("nip-11 request: status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return info, fmt.Errorf("read nip-11 document: %w", err)
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return info, fmt.Errorf("decode nip-11 document: %w", err)
	}
	return info, nil
}

// closeAll closes connections without a handshake: at the end of a phase
// the tool only needs them gone, and a closing handshake with thousands of
// connections would be a phase of its own.
func closeAll(conns []*websocket.Conn) {
	for _, ws := range conns {
		if ws != nil {
			ws.CloseNow() //nolint:errcheck // closing is all we want
		}
	}
}
