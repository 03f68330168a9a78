package main

import (
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/wisp-relay/wisp/dashboard"
	"github.com/wisp-relay/wisp/metrics"
	"github.com/wisp-relay/wisp/relay"
)

// The operator's dashboard (WISP_DASHBOARD), at /dashboard on the relay's
// port: there, a NIP-98 login names the relay's own URL (WISP_PUBLIC_URL),
// as the NIP-86 calls the page makes do, and the page's script reaches
// both the data and the NIP-86 API from its own origin. It is served only
// when someone can log in: an admin (WISP_ADMIN_PUBKEYS) or the holder of
// WISP_METRICS_TOKEN.

// dashboardOn says whether the dashboard is served, given the admins the
// relay knows.
func dashboardOn(cfg Config, admins []string) bool {
	return cfg.Dashboard == "on" && (len(admins) > 0 || cfg.MetricsToken != "")
}

// newDashboard builds the dashboard over a relay that feeds tally.
func newDashboard(cfg Config, rl *relay.Relay, admins bool, tally *dashboard.Tally, met *metrics.Metrics,
	store eventStore, ips ipMask, log *slog.Logger) *dashboard.Dashboard {
	return dashboard.New(dashboard.Config{
		Auth: rl, Admins: admins, Token: cfg.MetricsToken, Tally: tally,
		ShowIP: ips.show, IPsShown: ips.mode, ClientIP: rl.ClientIP,
		Stats: rl.Stats, Totals: met.Totals, DBSizes: store.sizes,
		StoredEvents: storedEvents(store),
		KindCounts:   store.kindCounts,
		RelayName:    rl.Name,
		SecureCookie: strings.HasPrefix(cfg.PublicURL, "wss://"),
		Logger:       log,
	})
}

// httpHandler is dash as a handler, nil without a dashboard (a nil
// *Dashboard in an interface would not be).
func httpHandler(dash *dashboard.Dashboard) http.Handler {
	if dash == nil {
		return nil
	}
	return dash
}

// dashboardURL is the page's address for the start-up log: the relay's
// URL for clients, with its http twin.
func dashboardURL(public string, addr net.Addr) string {
	u := clientURL(public, addr)
	if rest, ok := strings.CutPrefix(u, "wss://"); ok {
		u = "https://" + rest
	} else if rest, ok := strings.CutPrefix(u, "ws://"); ok {
		u = "http://" + rest
	}
	return strings.TrimSuffix(u, "/") + "/dashboard"
}

// dashboardLogins says who may log in, for the start-up log.
func dashboardLogins(admins, token bool) string {
	switch {
	case admins && token:
		return "admins (NIP-98 through a NIP-07 extension) or the metrics token"
	case admins:
		return "admins (NIP-98 through a NIP-07 extension)"
	}
	return "the metrics token"
}
