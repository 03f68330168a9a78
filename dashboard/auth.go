package dashboard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

const (
	// cookieName holds a session; the cookie is HttpOnly, SameSite=Strict
	// and sent only under /dashboard.
	cookieName = "wisp_dashboard"
	// sessionTTL is how long a login lasts; maxSessions bounds the
	// sessions held (only a valid login makes one, and the oldest goes
	// first).
	sessionTTL  = 12 * time.Hour
	maxSessions = 64
)

// Authenticator checks NIP-98 headers by the relay's rules (the relay's
// URL from its configuration, the replay cache) and knows its admins:
// *relay.Relay.
type Authenticator interface {
	CheckHTTPAuth(req *http.Request, body []byte) (pubkey string, err error)
	IsAdmin(pubkey string) bool
}

// viewer is who looks at the dashboard: an admin's pubkey (who may act,
// through NIP-86, signing each call), or the holder of the metrics token
// (who only watches).
type viewer struct {
	pubkey string // "" for the token
}

func (v viewer) admin() bool { return v.pubkey != "" }

func (v viewer) String() string {
	if v.admin() {
		return "admin " + v.pubkey
	}
	return "metrics token"
}

var (
	errNoCredentials  = errors.New("log in with a NIP-07 extension (NIP-98) or the metrics token")
	errBadToken       = errors.New("wrong token")
	errTooManyGuesses = errors.New("too many wrong tokens from this address; wait a minute")
	errNotAdmin       = errors.New("this pubkey is not an admin of this relay (WISP_ADMIN_PUBKEYS)")
)

// statusOf is the HTTP status of a refused login: 403 for a valid NIP-98
// header of someone who is not an admin, 429 for an address that guessed
// too often, 401 otherwise.
func statusOf(err error) int {
	if errors.Is(err, errNotAdmin) {
		return http.StatusForbidden
	}
	if errors.Is(err, errTooManyGuesses) {
		return http.StatusTooManyRequests
	}
	return http.StatusUnauthorized
}

// credentials checks what a request carries besides a session: a NIP-98
// Authorization header from an admin, or the metrics token as a bearer
// token (or the form field token, from the login page).
func (d *Dashboard) credentials(req *http.Request, body []byte, formToken string) (viewer, error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(req.Header.Get("Authorization")), " ")
	switch {
	case strings.EqualFold(scheme, "Nostr"):
		pk, err := d.cfg.Auth.CheckHTTPAuth(req, body)
		if err != nil {
			return viewer{}, err
		}
		if !d.cfg.Auth.IsAdmin(pk) {
			return viewer{}, errNotAdmin
		}
		return viewer{pubkey: pk}, nil
	case strings.EqualFold(scheme, "Bearer"):
		return d.checkToken(req, strings.TrimSpace(rest))
	case formToken != "":
		return d.checkToken(req, formToken)
	}
	return viewer{}, errNoCredentials
}

// checkToken compares a token with the metrics token. The token is a
// password on a public port, so an address that got it wrong too often
// must wait before it may try again.
func (d *Dashboard) checkToken(req *http.Request, got string) (viewer, error) {
	addr := d.clientAddr(req)
	now := time.Now()
	if !d.guesses.allowed(addr, now) {
		return viewer{}, errTooManyGuesses
	}
	if d.cfg.Token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(d.cfg.Token)) != 1 {
		d.guesses.failed(addr, now)
		return viewer{}, errBadToken
	}
	return viewer{}, nil
}

func (d *Dashboard) clientAddr(req *http.Request) string {
	if d.cfg.ClientIP != nil {
		return d.cfg.ClientIP(req)
	}
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
}

const (
	// An address may get the token wrong guessBurst times at once, then
	// once every guessEvery: a few typos cost nothing, a guesser gets
	// about 20 tries a minute. maxGuessers bounds the addresses held.
	guessBurst  = 20
	guessEvery  = 3 * time.Second
	maxGuessers = 4096
)

// guessLimiter counts wrong tokens per client address (a token bucket
// each).
type guessLimiter struct {
	mu sync.Mutex
	m  map[string]guessBucket
}

type guessBucket struct {
	left float64 // tries left at the time at
	at   time.Time
}

func (b guessBucket) now(now time.Time) float64 {
	return min(guessBurst, b.left+float64(now.Sub(b.at))/float64(guessEvery))
}

func (g *guessLimiter) allowed(addr string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, ok := g.m[addr]
	return !ok || b.now(now) >= 1
}

func (g *guessLimiter) failed(addr string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[string]guessBucket{}
	}
	b, ok := g.m[addr]
	if !ok {
		if len(g.m) >= maxGuessers {
			g.forget(now)
		}
		b = guessBucket{left: guessBurst, at: now}
	}
	g.m[addr] = guessBucket{left: max(0, b.now(now)-1), at: now}
}

// forget drops the addresses whose tries are back to full, and if none
// is, one at random (map order): the table stays bounded, and an attacker
// with many addresses gains no more than their count of tries.
func (g *guessLimiter) forget(now time.Time) {
	for k, b := range g.m {
		if b.now(now) >= guessBurst {
			delete(g.m, k)
		}
	}
	for k := range g.m {
		if len(g.m) < maxGuessers {
			break
		}
		delete(g.m, k)
	}
}

// sessions are the logged-in browsers, by the random value of their
// cookie.
type sessions struct {
	mu sync.Mutex
	m  map[string]session
}

type session struct {
	who     viewer
	expires time.Time
}

// open starts a session for who and returns its cookie value.
func (s *sessions) open(who viewer, now time.Time) string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	id := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]session{}
	}
	for k, v := range s.m {
		if !now.Before(v.expires) {
			delete(s.m, k)
		}
	}
	for len(s.m) >= maxSessions {
		var oldest string
		for k, v := range s.m {
			if oldest == "" || v.expires.Before(s.m[oldest].expires) {
				oldest = k
			}
		}
		delete(s.m, oldest)
	}
	s.m[id] = session{who: who, expires: now.Add(sessionTTL)}
	return id
}

// get returns the session of a cookie value, if it is open.
func (s *sessions) get(id string, now time.Time) (viewer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	if !ok || !now.Before(v.expires) {
		return viewer{}, false
	}
	return v.who, true
}

func (s *sessions) close(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// session returns the viewer of the request's session cookie.
func (d *Dashboard) session(req *http.Request) (viewer, bool) {
	c, err := req.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return viewer{}, false
	}
	return d.sessions.get(c.Value, time.Now())
}

func (d *Dashboard) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: value, Path: basePath, MaxAge: maxAge,
		HttpOnly: true, Secure: d.cfg.SecureCookie, SameSite: http.SameSiteStrictMode,
	})
}
