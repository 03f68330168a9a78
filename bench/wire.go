package bench

import (
	"bytes"
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
		return nil, dialError(url, resp, err)
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

// relayMsg is a message from the relay, decoded as far as the tool needs.
type relayMsg struct {
	label  string       // EVENT, OK, EOSE, CLOSED, NOTICE, ...
	sub    string       // EVENT, EOSE, CLOSED
	event  *nostr.Event // EVENT
	id     string       // OK
	ok     bool         // OK
	reason string       // OK, CLOSED, NOTICE
}

// parseRelayMsg decodes a relay message. EVENTs, by far the most common
// and the largest, are split by hand and only their event object goes
// through a JSON decoder (go-nostr's easyjson); a general parser scans
// each of them twice, which costs the relay CPU on a shared machine. Parse
// failures are returned: a relay that sends garbage is counted, not
// trusted.
// eventSub returns the subscription id of an EVENT message without
// parsing its event, and false for any other message.
func eventSub(data []byte) (string, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return "", false
	}
	label, i, err := jsonString(data, skipSpace(data, i+1))
	if err != nil || label != "EVENT" {
		return "", false
	}
	i = skipSpace(data, i)
	if i >= len(data) || data[i] != ',' {
		return "", false
	}
	sub, _, err := jsonString(data, skipSpace(data, i+1))
	return sub, err == nil
}

// eventID returns the subscription id and the event id of an EVENT
// message, raw, without decoding the event: the fan-out readers need only
// which event arrived, and a full decode of every delivery made the tool
// cost as much CPU as the relay it measures. ok is false for any other
// message, for a malformed one, and for ids or subscription ids written
// with escapes (parseRelayMsg decodes those).
func eventID(data []byte) (sub, id []byte, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return nil, nil, false
	}
	label, i, ok := rawString(data, skipSpace(data, i+1))
	if !ok || string(label) != "EVENT" {
		return nil, nil, false
	}
	if i = skipSpace(data, i); i >= len(data) || data[i] != ',' {
		return nil, nil, false
	}
	if sub, i, ok = rawString(data, skipSpace(data, i+1)); !ok {
		return nil, nil, false
	}
	if i = skipSpace(data, i); i >= len(data) || data[i] != ',' {
		return nil, nil, false
	}
	i = skipSpace(data, i+1)
	if i >= len(data) || data[i] != '{' {
		return nil, nil, false
	}
	last := len(data) - 1
	for last > i && isSpace(data[last]) {
		last--
	}
	// Walk the object's members for "id"; the last one counts, as in a
	// JSON decoder.
	for i++; ; i++ {
		i = skipSpace(data, i)
		var key []byte
		if key, i, ok = rawString(data, i); !ok {
			return nil, nil, false
		}
		if i = skipSpace(data, i); i >= len(data) || data[i] != ':' {
			return nil, nil, false
		}
		v := skipSpace(data, i+1)
		if i, ok = skipValue(data, v); !ok {
			return nil, nil, false
		}
		if string(key) == "id" {
			if id, _, ok = rawString(data, v); !ok {
				return nil, nil, false
			}
		}
		if i = skipSpace(data, i); i < len(data) && data[i] == '}' {
			if skipSpace(data, i+1) != last || data[last] != ']' {
				return nil, nil, false
			}
			return sub, id, id != nil
		}
		if i >= len(data) || data[i] != ',' {
			return nil, nil, false
		}
	}
}

// rawString returns the bytes of the JSON string at data[i] between its
// quotes, and the index past it; ok is false if it is not a string or
// holds an escape.
func rawString(data []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, i, false
	}
	j := bytes.IndexByte(data[i+1:], '"')
	if j < 0 {
		return nil, i, false
	}
	s = data[i+1 : i+1+j]
	if bytes.IndexByte(s, '\\') >= 0 {
		return nil, i, false
	}
	return s, i + j + 2, true
}

// skipValue returns the index past the JSON value at data[i]. It tracks
// strings and nesting only: numbers and literals are taken as they stand,
// which is enough to find where a value ends.
func skipValue(data []byte, i int) (int, bool) {
	if i >= len(data) {
		return i, false
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				end, ok := skipString(data, j)
				if !ok {
					return i, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return i, false
	case ',', ':', '}', ']':
		return i, false
	default:
		j := i
		for j < len(data) && !isSpace(data[j]) && data[j] != ',' && data[j] != '}' && data[j] != ']' {
			j++
		}
		return j, true
	}
}

// skipString returns the index past the JSON string at data[i], escapes
// and all.
func skipString(data []byte, i int) (int, bool) {
	for j := i + 1; ; j++ {
		k := bytes.IndexByte(data[j:], '"')
		if k < 0 {
			return i, false
		}
		j += k
		// The quote ends the string unless an odd run of backslashes
		// escapes it.
		n := 0
		for b := j - 1; b > i && data[b] == '\\'; b-- {
			n++
		}
		if n%2 == 0 {
			return j + 1, true
		}
	}
}

func parseRelayMsg(data []byte) (relayMsg, error) {
	var m relayMsg
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return m, fmt.Errorf("relay message %.80q is not a JSON array", data)
	}
	label, i, err := jsonString(data, skipSpace(data, i+1))
	if err != nil {
		return m, fmt.Errorf("relay message %.80q: label: %w", data, err)
	}
	m.label = label
	if label == "EVENT" {
		i = skipSpace(data, i)
		if i >= len(data) || data[i] != ',' {
			return m, fmt.Errorf("relay EVENT %.80q has no subscription id", data)
		}
		if m.sub, i, err = jsonString(data, skipSpace(data, i+1)); err != nil {
			return m, fmt.Errorf("relay EVENT %.80q: subscription id: %w", data, err)
		}
		i = skipSpace(data, i)
		end := len(data) - 1
		for end > i && isSpace(data[end]) {
			end--
		}
		if i >= end || data[i] != ',' || data[end] != ']' {
			return m, fmt.Errorf("relay EVENT %.80q is malformed", data)
		}
		m.event = &nostr.Event{}
		if err := m.event.UnmarshalJSON(data[i+1 : end]); err != nil {
			return m, fmt.Errorf("relay EVENT %.80q: event: %w", data, err)
		}
		return m, nil
	}

	// The rest are small and rare enough for encoding/json.
	var parts []json.RawMessage
	if err := json.Unmarshal(data, &parts); err != nil {
		return m, fmt.Errorf("relay message %.80q: %w", data, err)
	}
	str := func(k int) string {
		var v string
		if k < len(parts) {
			json.Unmarshal(parts[k], &v) //nolint:errcheck // a wrong type reads as ""
		}
		return v
	}
	switch label {
	case "OK":
		if len(parts) < 3 || json.Unmarshal(parts[2], &m.ok) != nil {
			return m, fmt.Errorf("relay OK %.80q is malformed", data)
		}
		m.id, m.reason = str(1), str(3)
	case "EOSE":
		m.sub = str(1)
	case "CLOSED":
		m.sub, m.reason = str(1), str(2)
	case "NOTICE":
		m.reason = str(1)
	case "NEG-ERR":
		m.sub, m.reason = str(1), str(2)
	}
	return m, nil
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// jsonString reads the JSON string starting at data[i] and returns it and
// the index just past it.
func jsonString(data []byte, i int) (string, int, error) {
	if i >= len(data) || data[i] != '"' {
		return "", i, fmt.Errorf("want a string at offset %d", i)
	}
	escaped := false
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			escaped = true
			j++ // skip the escaped byte
		case '"':
			if !escaped {
				return string(data[i+1 : j]), j + 1, nil
			}
			var s string
			if err := json.Unmarshal(data[i:j+1], &s); err != nil {
				return "", i, fmt.Errorf("decode string: %w", err)
			}
			return s, j + 1, nil
		}
	}
	return "", i, fmt.Errorf("unterminated string at offset %d", i)
}

// RelayInfo is what the relay says about itself in its NIP-11 document.
type RelayInfo struct {
	Name     string `json:"name,omitempty"`
	Software string `json:"software,omitempty"`
	Version  string `json:"version,omitempty"`
	// SupportedNIPs decides whether search is in the query mix (NIP-50).
	// json.Number takes numbers and the strings some relays write.
	SupportedNIPs []json.Number `json:"supported_nips,omitempty"`
}

// supports says whether the relay lists NIP nip.
func (i RelayInfo) supports(nip int) bool {
	for _, n := range i.SupportedNIPs {
		if v, err := n.Int64(); err == nil && v == int64(nip) {
			return true
		}
	}
	return false
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

// dialError says why a dial failed, with a hint where the relay refused
// more connections from this machine's address.
func dialError(url string, resp *http.Response, err error) error {
	if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		return fmt.Errorf("dial %s: the relay refuses more connections from this IP address (HTTP 429); "+
			"run it without its per-IP connection cap for a load test (wisp: WISP_MAX_CONNS_PER_IP=0): %w", url, err)
	}
	return fmt.Errorf("dial %s: %w", url, err)
}
