// Package dashboard serves the operator's live page, /dashboard on the
// relay's port: the relay's figures as charts (events a second by
// outcome and reason, connections and subscriptions, query latency, disk
// and WAL, slow-consumer evictions), the kinds stored and the busiest
// authors and IPs, and forms that act through NIP-86. It is server-
// rendered HTML and one small script (embedded, no build step, nothing
// from elsewhere) that polls a JSON endpoint and draws SVG.
//
// Logging in takes a NIP-98 event signed by an admin (WISP_ADMIN_PUBKEYS)
// through a NIP-07 browser extension, checked by the relay's own rules, or
// the metrics token (WISP_METRICS_TOKEN), which only watches; either opens
// a session held in a cookie. The figures come from what the relay and
// package metrics count already; the busiest lists from a Tally, in fixed
// memory.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/wisp-relay/wisp/metrics"
	"github.com/wisp-relay/wisp/relay"
)

// basePath is where the dashboard is served.
const basePath = "/dashboard"

const (
	// The kinds in the database are counted (one pass over the kind
	// index) only while someone watches, at most every kindsEvery, and
	// then waiting kindsPause times as long as the count took: a small
	// database is counted every few seconds, a large one rarely enough
	// that the count costs a read connection at most 1% of its time.
	kindsEvery = 5 * time.Second
	kindsPause = 100
	kindsShown = 20
	// maxLoginBody bounds a login request (a form with the token).
	maxLoginBody = 4 << 10
)

// KindCount is how many stored events have one kind.
type KindCount struct {
	Kind   int   `json:"kind"`
	Events int64 `json:"events"`
}

// Config is what the dashboard reads and who may see it.
type Config struct {
	// Auth checks NIP-98 logins and knows the admins: the relay.
	Auth Authenticator
	// Admins says that WISP_ADMIN_PUBKEYS is set: the login page offers
	// NIP-98 through a browser extension.
	Admins bool
	// Token, when set, also logs in (as a watcher): WISP_METRICS_TOKEN.
	Token string
	// Tally counts the busiest authors and IPs and the kinds stored; the
	// relay must feed it (relay.Config.Senders, Relay.OnStored).
	Tally *Tally
	// ShowIP turns a client address into what the page shows, as the log
	// does (WISP_LOG_IPS): its tag, itself; IPsShown names the mode.
	ShowIP   func(ip string) string
	IPsShown string
	// What the figures come from; nil ones are left out.
	Stats        func() relay.Stats
	Totals       func() metrics.Totals
	DBSizes      func() (db, wal int64, err error)
	StoredEvents func() (n int64, ok bool)
	KindCounts   func(ctx context.Context, limit int) ([]KindCount, error)
	// ClientIP is a request's client address by the relay's rule
	// (WISP_REAL_IP_HEADER); nil takes the TCP peer. Wrong tokens are
	// limited per address.
	ClientIP func(req *http.Request) string
	// RelayName is shown in the title.
	RelayName func() string
	// SecureCookie marks the session cookie Secure: the page is reached
	// over https (WISP_PUBLIC_URL is wss://).
	SecureCookie bool
	Logger       *slog.Logger
}

// Dashboard serves the page, its script and its data.
type Dashboard struct {
	cfg      Config
	log      *slog.Logger
	samples  sampler
	sessions sessions
	guesses  guessLimiter

	mu          sync.Mutex
	watched     time.Time // the last time data was asked for
	kinds       []KindCount
	kindsAsOf   time.Time
	kindsNext   time.Time // the next count, not before
	kindsFailed bool
}

// New returns a dashboard; Run must run for its charts to move.
func New(cfg Config) *Dashboard {
	if cfg.Tally == nil {
		cfg.Tally = NewTally(cfg.ShowIP != nil)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dashboard{cfg: cfg, log: log}
}

// Run samples the figures every second (and counts the kinds stored
// while someone watches) until ctx is done.
func (d *Dashboard) Run(ctx context.Context) { d.run(ctx) }

//go:embed assets
var assets embed.FS

// ServeHTTP serves /dashboard and what is under it.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	secureHeaders(w.Header())
	switch req.URL.Path {
	case basePath:
		d.servePage(w, req)
	case basePath + "/login":
		d.serveLogin(w, req)
	case basePath + "/logout":
		d.serveLogout(w, req)
	case basePath + "/data":
		d.serveData(w, req)
	case basePath + "/dashboard.js":
		serveAsset(w, req, "assets/dashboard.js", "text/javascript; charset=utf-8")
	case basePath + "/dashboard.css":
		serveAsset(w, req, "assets/dashboard.css", "text/css; charset=utf-8")
	case basePath + "/icon.svg":
		serveAsset(w, req, "assets/icon.svg", "image/svg+xml")
	default:
		http.NotFound(w, req)
	}
}

// secureHeaders: no script but the dashboard's own file, nothing loaded
// from elsewhere, no framing, no referrer; data shown is escaped besides
// (attacker-controlled content never reaches the page as markup).
func secureHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

// noStore keeps what only a logged-in viewer may see out of every cache.
func noStore(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Cookie, Authorization")
}

func serveAsset(w http.ResponseWriter, req *http.Request, name, ctype string) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	b, err := assets.ReadFile(name)
	if err != nil {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache") // the same for everyone; revalidated after an upgrade
	_, _ = w.Write(b)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

// serveLogin opens a session: a NIP-98 header signed by an admin (from
// the page's script), or the token (from the page's form, or a bearer
// header). The form is answered with a redirect or the login page again;
// the script with JSON.
func (d *Dashboard) serveLogin(w http.ResponseWriter, req *http.Request) {
	noStore(w.Header())
	if req.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxLoginBody+1))
	if err != nil || len(body) > maxLoginBody {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	isForm := req.Header.Get("Content-Type") == "application/x-www-form-urlencoded"
	token := ""
	if isForm {
		form, _ := url.ParseQuery(string(body))
		token = form.Get("token")
	}
	who, err := d.credentials(req, body, token)
	if err != nil {
		d.log.Info("dashboard login refused", "err", err)
		if isForm {
			d.render(w, statusOf(err), pageData{Error: "Login refused: " + err.Error() + "."})
			return
		}
		writeJSON(w, statusOf(err), map[string]string{"error": err.Error()})
		return
	}
	d.setCookie(w, d.sessions.open(who, time.Now()), int(sessionTTL.Seconds()))
	d.log.Info("dashboard login", "who", who.String())
	if isForm {
		http.Redirect(w, req, basePath, http.StatusSeeOther)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "admin": who.admin()})
}

func (d *Dashboard) serveLogout(w http.ResponseWriter, req *http.Request) {
	noStore(w.Header())
	if req.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	if c, err := req.Cookie(cookieName); err == nil {
		d.sessions.close(c.Value)
	}
	d.setCookie(w, "", -1)
	http.Redirect(w, req, basePath, http.StatusSeeOther)
}

// viewerOf is who a request comes from: its session, or credentials of
// its own (a bearer token, or a NIP-98 header for this very URL).
func (d *Dashboard) viewerOf(req *http.Request) (viewer, error) {
	if v, ok := d.session(req); ok {
		return v, nil
	}
	return d.credentials(req, nil, "")
}

// serveData answers the script's poll: the samples after ?since (unix
// ms) and the lists as they are.
func (d *Dashboard) serveData(w http.ResponseWriter, req *http.Request) {
	noStore(w.Header())
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	who, err := d.viewerOf(req)
	if err != nil {
		writeJSON(w, statusOf(err), map[string]string{"error": err.Error()})
		return
	}
	since, _ := strconv.ParseInt(req.URL.Query().Get("since"), 10, 64)
	writeJSON(w, http.StatusOK, d.snapshot(who, since))
}

// Data is the JSON the script polls.
type Data struct {
	Now     int64    `json:"now"`    // unix ms
	Viewer  string   `json:"viewer"` // the admin's pubkey, or "token"
	Admin   bool     `json:"admin"`  // may act through NIP-86
	Samples []Sample `json:"samples"`
	// EventsStored is how many events the database holds (-1: unknown).
	EventsStored int64 `json:"events_stored"`
	// Kinds are the kinds in the database, the most numerous first, as of
	// KindsAsOf (unix ms; 0: not counted yet).
	Kinds     []KindCount `json:"kinds"`
	KindsAsOf int64       `json:"kinds_as_of"`
	// Busiest in the last five to ten minutes: kinds stored, authors of
	// events with a good signature, addresses sending EVENTs (shown as
	// IPsShown says: hashed, full; off: none counted).
	RecentKinds []Entry `json:"recent_kinds"`
	Authors     []Entry `json:"authors"`
	IPs         []Entry `json:"ips"`
	IPsShown    string  `json:"ips_shown"`
}

func (d *Dashboard) snapshot(who viewer, since int64) Data {
	now := time.Now()
	d.mu.Lock()
	d.watched = now
	kinds, asOf := d.kinds, d.kindsAsOf
	d.mu.Unlock()
	out := Data{
		Now: now.UnixMilli(), Viewer: "token", Admin: who.admin(),
		Samples: d.samples.since(since), EventsStored: -1,
		Kinds: kinds, RecentKinds: d.cfg.Tally.kinds.top(busiestShown),
		Authors: d.cfg.Tally.authors.top(busiestShown), IPs: []Entry{}, IPsShown: "off",
	}
	if out.Kinds == nil {
		out.Kinds = []KindCount{}
	}
	if !asOf.IsZero() {
		out.KindsAsOf = asOf.UnixMilli()
	}
	if who.admin() {
		out.Viewer = who.pubkey
	}
	if d.cfg.StoredEvents != nil {
		if n, ok := d.cfg.StoredEvents(); ok {
			out.EventsStored = n
		}
	}
	if t := d.cfg.Tally; t.ips != nil && d.cfg.ShowIP != nil {
		out.IPsShown = d.cfg.IPsShown
		for _, e := range t.ips.top(busiestShown) {
			out.IPs = append(out.IPs, Entry{Key: d.cfg.ShowIP(e.Key), Count: e.Count})
		}
	}
	return out
}

// countKinds counts the kinds in the database when someone watched in
// the last minute and the next count is due (see kindsPause). It runs on
// the sampler's goroutine, so that one count at most is under way.
func (d *Dashboard) countKinds(ctx context.Context, now time.Time) {
	if d.cfg.KindCounts == nil {
		return
	}
	d.mu.Lock()
	due := now.Sub(d.watched) < time.Minute && !now.Before(d.kindsNext)
	d.mu.Unlock()
	if !due {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kinds, err := d.cfg.KindCounts(ctx, kindsShown)
	took := time.Since(now)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.kindsAsOf, d.kindsNext = now, now.Add(max(kindsEvery, kindsPause*took)) // a failure waits too
	if err != nil {
		if ctx.Err() == nil && !d.kindsFailed {
			d.log.Warn("dashboard: count events by kind", "err", err)
		}
		d.kindsFailed = true
		return
	}
	d.kinds, d.kindsFailed = kinds, false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
