package relay

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

const (
	// rpcContentType marks a NIP-86 management request.
	rpcContentType = "application/nostr+json+rpc"
	// kindHTTPAuth is NIP-98's HTTP auth event.
	kindHTTPAuth = 27235
	// httpAuthWindow is how far a NIP-98 event's created_at may be from now.
	httpAuthWindow = 60 * time.Second
	// maxRPCBody bounds a management request.
	maxRPCBody = 64 << 10
)

// managementEnabled reports whether the NIP-86 API is served.
func (r *Relay) managementEnabled() bool {
	return r.cfg.Manager != nil && len(r.cfg.AdminPubkeys) > 0
}

// isManagementRequest reports whether req is a NIP-86 call (a POST with the
// nostr+json+rpc content type) or its CORS preflight.
func (r *Relay) isManagementRequest(req *http.Request) bool {
	if !r.managementEnabled() {
		return false
	}
	if req.Method == http.MethodOptions {
		return req.Header.Get("Access-Control-Request-Method") == http.MethodPost
	}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	return req.Method == http.MethodPost && strings.EqualFold(mt, rpcContentType)
}

type rpcRequest struct {
	Method string            `json:"method"`
	Params []json.RawMessage `json:"params"`
}

type rpcResponse struct {
	Result any    `json:"result"`
	Error  string `json:"error,omitempty"`
}

// serveManagement answers one NIP-86 call, authorized by a NIP-98 header
// from an admin pubkey: 401 when the header is missing, invalid or
// replayed, 403 when it is valid but not an admin's.
func (r *Relay) serveManagement(w http.ResponseWriter, req *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	if req.Method == http.MethodOptions {
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxRPCBody+1))
	if err != nil {
		http.Error(w, "cannot read request", http.StatusBadRequest)
		return
	}
	if len(body) > maxRPCBody {
		writeRPC(w, http.StatusRequestEntityTooLarge, rpcResponse{Error: "request too large"})
		return
	}
	caller, err := r.checkHTTPAuth(req, body)
	if err != nil {
		h.Set("WWW-Authenticate", "Nostr")
		writeRPC(w, http.StatusUnauthorized, rpcResponse{Error: "unauthorized: " + err.Error()})
		return
	}
	if !isAdmin(r.cfg.AdminPubkeys, caller) {
		writeRPC(w, http.StatusForbidden, rpcResponse{Error: "forbidden: " + caller + " is not an admin of this relay"})
		return
	}
	var call rpcRequest
	if err := json.Unmarshal(body, &call); err != nil || call.Method == "" {
		writeRPC(w, http.StatusBadRequest, rpcResponse{Error: "invalid request: want {\"method\": ..., \"params\": [...]}"})
		return
	}
	res, err := r.cfg.Manager.Call(req.Context(), caller, call.Method, call.Params)
	switch {
	case err == nil:
		writeRPC(w, http.StatusOK, rpcResponse{Result: res})
	case errors.Is(err, wisp.ErrUnknownMethod) || errors.Is(err, wisp.ErrBadParams):
		writeRPC(w, http.StatusOK, rpcResponse{Error: err.Error()})
	default:
		r.log.Error("management call", "method", call.Method, "admin", caller, "err", err)
		writeRPC(w, http.StatusInternalServerError, rpcResponse{Error: "internal error"})
	}
}

func writeRPC(w http.ResponseWriter, status int, res rpcResponse) {
	b, err := json.Marshal(res)
	if err != nil {
		b, _ = json.Marshal(rpcResponse{Error: "internal error"})
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func isAdmin(admins []string, pk string) bool {
	for _, a := range admins {
		if a == pk {
			return true
		}
	}
	return false
}

var (
	errNoAuth      = errors.New("missing Authorization: Nostr header (NIP-98)")
	errBadAuth     = errors.New("malformed NIP-98 event")
	errAuthKind    = errors.New("NIP-98 event must have kind 27235")
	errAuthTime    = errors.New("NIP-98 event created_at is too far from now")
	errAuthURL     = errors.New("NIP-98 u tag does not name this relay")
	errAuthMethod  = errors.New("NIP-98 method tag must be the request's method")
	errAuthPayload = errors.New("NIP-98 payload tag must be the sha256 of the body")
	errAuthSig     = errors.New("NIP-98 event has a bad id or signature")
	errAuthReplay  = errors.New("NIP-98 event was already used")
)

// CheckHTTPAuth verifies a NIP-98 Authorization header for req, whose
// body is body, and returns the signer's pubkey: kind 27235, at most 60 s
// from now, a u tag naming this relay (by its configuration, never the
// Host header) and req's path and query, req's method, the sha256 of a
// non-empty body, a good signature, and never used before. It says
// nothing of who the signer is: see IsAdmin.
func (r *Relay) CheckHTTPAuth(req *http.Request, body []byte) (string, error) {
	return r.checkHTTPAuth(req, body)
}

// IsAdmin reports whether pubkey may use the NIP-86 management API.
func (r *Relay) IsAdmin(pubkey string) bool {
	return r.managementEnabled() && isAdmin(r.cfg.AdminPubkeys, pubkey)
}

// checkHTTPAuth is CheckHTTPAuth.
func (r *Relay) checkHTTPAuth(req *http.Request, body []byte) (string, error) {
	scheme, token, _ := strings.Cut(strings.TrimSpace(req.Header.Get("Authorization")), " ")
	if !strings.EqualFold(scheme, "Nostr") || token == "" {
		return "", errNoAuth
	}
	token = strings.TrimSpace(token)
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(token); err == nil {
			break
		}
	}
	if err != nil {
		return "", errBadAuth
	}
	var ev nostr.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return "", errBadAuth
	}
	if ev.Kind != kindHTTPAuth {
		return "", errAuthKind
	}
	if d := time.Since(ev.CreatedAt.Time()); d > httpAuthWindow || d < -httpAuthWindow {
		return "", errAuthTime
	}
	u := ev.Tags.Find("u")
	if u == nil || !r.isThisEndpoint(req, u[1]) {
		return "", errAuthURL
	}
	m := ev.Tags.Find("method")
	if m == nil || !strings.EqualFold(m[1], req.Method) {
		return "", errAuthMethod
	}
	// NIP-98 asks for the payload tag where there is a body (every NIP-86
	// call has one); a request without one (a GET) may leave it out.
	sum := sha256.Sum256(body)
	p := ev.Tags.Find("payload")
	if (p == nil && len(body) > 0) || (p != nil && !strings.EqualFold(p[1], hex.EncodeToString(sum[:]))) {
		return "", errAuthPayload
	}
	if !ev.CheckID() || !verifySig(&ev) {
		return "", errAuthSig
	}
	if !r.httpAuthSeen.firstUse(ev.ID, time.Now()) {
		return "", errAuthReplay
	}
	return ev.PubKey, nil
}

// isThisEndpoint reports whether a NIP-98 u tag names this relay's URL:
// a host name this relay answers to by its configuration (identity.go;
// never the request's Host header), and the request's path ("" and "/"
// alike). The scheme is not compared: clients put the relay's ws(s):// URL
// or its http(s):// twin.
func (r *Relay) isThisEndpoint(req *http.Request, u string) bool {
	if !r.id.isThisRelay(u) {
		return false
	}
	rest := u
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	path := "/"
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		path = rest[i:]
	}
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i]
	}
	want := req.URL.RequestURI()
	norm := func(s string) string {
		if s == "" || strings.HasPrefix(s, "?") {
			return "/" + s
		}
		return s
	}
	return norm(path) == norm(want)
}

// authCache remembers the NIP-98 events already used, for as long as they
// could pass the time check, so that a captured header cannot be replayed.
type authCache struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (a *authCache) firstUse(id string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = map[string]time.Time{}
	}
	for k, t := range a.seen {
		if now.Sub(t) > 2*httpAuthWindow {
			delete(a.seen, k)
		}
	}
	if _, ok := a.seen[id]; ok {
		return false
	}
	a.seen[id] = now
	return true
}
