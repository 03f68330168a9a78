package wstest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

// RPC makes a NIP-86 call to the relay at httpURL as k, authorized by a
// NIP-98 header, and returns the result, the error the relay gave, and
// the HTTP status.
func RPC(t *testing.T, httpURL string, k Key, method string, params ...any) (json.RawMessage, string, int) {
	t.Helper()
	if params == nil {
		params = []any{}
	}
	body, _ := json.Marshal(map[string]any{"method": method, "params": params})
	sum := sha256.Sum256(body)
	ev := &nostr.Event{Kind: 27235, CreatedAt: nostr.Now(), Tags: nostr.Tags{
		{"u", httpURL + "/"}, {"method", "POST"}, {"payload", hex.EncodeToString(sum[:])},
		{"r", nostr.GeneratePrivateKey()[:16]}, // two calls in one second are not a replay
	}}
	if err := ev.Sign(k.SK); err != nil {
		t.Fatal(err)
	}
	auth, _ := json.Marshal(ev)
	req, _ := http.NewRequest(http.MethodPost, httpURL+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/nostr+json+rpc")
	req.Header.Set("Authorization", "Nostr "+base64.StdEncoding.EncodeToString(auth))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var res struct {
		Result json.RawMessage `json:"result"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("NIP-86 answer %q: %v", b, err)
	}
	return res.Result, res.Error, resp.StatusCode
}
