package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
)

// page is the dashboard's HTML, and the login form before a session:
// html/template escapes every value, and the page carries no script but
// dashboard.js.
var page = template.Must(template.ParseFS(assets, "assets/page.html"))

// pageData is what the template shows.
type pageData struct {
	Name       string
	LoggedIn   bool
	Admin      bool
	Viewer     string // the admin's pubkey, or "" for the token
	Error      string
	NostrLogin bool // admins are configured: NIP-98 login is offered
	TokenLogin bool // the token is configured
	Figures    []figure
	Kinds      []KindCount
	Recent     []Entry
	Authors    []Entry
	IPs        []Entry
	IPsShown   string
}

// figure is one number at the top of the page; the script updates the
// element whose data-f is Key.
type figure struct{ Key, Label, Value string }

// servePage renders the dashboard for a session, the login form without.
func (d *Dashboard) servePage(w http.ResponseWriter, req *http.Request) {
	noStore(w.Header())
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	who, ok := d.session(req)
	if !ok {
		d.render(w, http.StatusOK, pageData{})
		return
	}
	snap := d.snapshot(who, 0)
	var last Sample
	if n := len(snap.Samples); n > 0 {
		last = snap.Samples[n-1]
	}
	rejected := 0.0
	for _, v := range last.Rejected {
		rejected += v
	}
	stored := "unknown"
	if snap.EventsStored >= 0 {
		stored = strconv.FormatInt(snap.EventsStored, 10)
	}
	pd := pageData{
		LoggedIn: true, Admin: who.admin(), Viewer: who.pubkey,
		Figures: []figure{
			{"connections", "connections", strconv.FormatInt(last.Connections, 10)},
			{"subscriptions", "subscriptions", strconv.FormatInt(last.Subscriptions, 10)},
			{"accepted", "accepted / s", rate(last.Accepted)},
			{"rejected", "refused / s", rate(rejected)},
			{"accepted_total", "accepted since start", strconv.FormatFloat(last.AcceptedTotal, 'f', 0, 64)},
			{"rejected_total", "refused since start", strconv.FormatFloat(last.RejectedTotal, 'f', 0, 64)},
			{"events_stored", "events in the database", stored},
			{"query_p95_ms", "query p95 (ms)", rate(last.QueryP95Ms)},
			{"db_bytes", "database", byteSize(last.DBBytes)},
			{"wal_bytes", "WAL", byteSize(last.WALBytes)},
			{"evictions_total", "slow consumers closed", strconv.FormatInt(last.EvictionsTotal, 10)},
		},
		Kinds: snap.Kinds, Recent: snap.RecentKinds, Authors: snap.Authors, IPs: snap.IPs, IPsShown: snap.IPsShown,
	}
	d.render(w, http.StatusOK, pd)
}

func (d *Dashboard) render(w http.ResponseWriter, status int, pd pageData) {
	pd.Name = "wisp"
	if d.cfg.RelayName != nil {
		pd.Name = d.cfg.RelayName()
	}
	pd.NostrLogin, pd.TokenLogin = d.cfg.Admins, d.cfg.Token != ""
	var buf bytes.Buffer
	if err := page.Execute(&buf, pd); err != nil {
		d.log.Warn("render dashboard", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// rate formats a figure a second as the script does.
func rate(v float64) string {
	if v >= 100 || v == float64(int64(v)) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// byteSize formats bytes as the script does (KiB, MiB, GiB).
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", v, [...]string{"KiB", "MiB", "GiB", "TiB"}[i])
}
