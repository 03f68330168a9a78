package relay

import (
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-relay/wisp"
)

// pageParams is what the front page shows.
type pageParams struct {
	info              Info
	lim               Limits
	version, verifier string
	nips              []int
	url               string          // ws:// or wss:// URL to add to a client (see relayURL)
	eventsStored      int64           // -1: unknown
	connections       int             // open websocket connections
	extra             []wisp.LimitRow // groups' and membership's limits
}

// pageView is pageParams made ready for the template, which needs exported
// fields and no logic beyond ranges and conditionals.
type pageView struct {
	Name, Description string
	Icon              string
	URL               string
	Version           string
	Software          string
	Events            string
	Connections       string
	NIPs              []pageNIP
	Limits            []pageRow
	Contact           string
	ContactLink       bool
	PubKey            string
	Self              string
}

type pageNIP struct{ Label, Link string }

type pageRow struct{ Name, Value string }

// renderPage writes the front page for browsers. html/template escapes
// every value by context, so operator- and client-controlled strings (name,
// description, Host header) cannot inject markup, and URLs in href/src
// attributes with unsafe schemes are neutralised.
func renderPage(w io.Writer, p pageParams) error {
	v := pageView{
		Name:        p.info.Name,
		Description: p.info.Description,
		URL:         p.url,
		Version:     versionString(p.version, p.verifier),
		Software:    softwareURL,
		Events:      "unknown",
		Connections: strconv.Itoa(p.connections),
		Contact:     p.info.Contact,
		ContactLink: isWebOrMailURL(p.info.Contact),
		PubKey:      p.info.PubKey,
		Self:        p.info.Self,
		Limits:      pageLimits(&p.lim),
	}
	for _, row := range p.extra {
		v.Limits = append(v.Limits, pageRow(row))
	}
	if v.Name == "" {
		v.Name = "A wisp relay"
	}
	if isWebOrMailURL(p.info.Icon) && !strings.HasPrefix(strings.ToLower(p.info.Icon), "mailto:") {
		v.Icon = p.info.Icon
	}
	if p.eventsStored >= 0 {
		v.Events = groupThousands(p.eventsStored)
	}
	for _, n := range p.nips {
		v.NIPs = append(v.NIPs, pageNIP{
			Label: fmt.Sprintf("NIP-%02d", n),
			Link:  fmt.Sprintf("https://github.com/nostr-protocol/nips/blob/master/%02d.md", n),
		})
	}
	return pageTemplate.Execute(w, v)
}

func pageLimits(l *Limits) []pageRow {
	count := func(n int, unit string) string {
		if n <= 0 {
			return "no limit"
		}
		return groupThousands(int64(n)) + unit
	}
	past := "no limit"
	if l.CreatedAtPast > 0 {
		past = humanDuration(l.CreatedAtPast) + " ago"
	}
	return []pageRow{
		{"Largest message", formatBytes(l.MaxMessageBytes)},
		{"Largest event", formatBytes(l.MaxEventBytes)},
		{"Longest content", groupThousands(int64(l.MaxContentLength)) + " characters"},
		{"Tags per event", count(l.MaxEventTags, "")},
		{"Longest tag element", formatBytes(l.MaxTagValueBytes)},
		{"Oldest created_at", past},
		{"Newest created_at", humanDuration(l.CreatedAtFuture) + " ahead"},
		{"Subscriptions per connection", count(l.MaxSubscriptions, ", holding "+formatBytes(l.MaxSubscriptionBytes)+" at most")},
		{"Filters per subscription", count(l.MaxFilters, "")},
		{"Values per filter list", count(l.MaxFilterValues, "")},
		{"Subscription id length", count(l.MaxSubIDLength, " characters")},
		{"Events per filter (limit)", count(l.MaxLimit, " at most, "+groupThousands(int64(l.DefaultLimit))+" by default")},
		{"Query time", humanDuration(l.QueryTimeout)},
	}
}

// relayURL is the URL clients should add: publicURL when the operator set
// one, otherwise derived from the request. Behind a TLS-terminating proxy
// the scheme comes from X-Forwarded-Proto or Forwarded; this is only shown,
// never trusted for anything else.
func relayURL(r *http.Request, publicURL string) string {
	if publicURL != "" {
		return publicURL
	}
	scheme := "ws"
	if r.TLS != nil || forwardedTLS(r.Header) {
		scheme = "wss"
	}
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return scheme + "://" + host
}

// forwardedTLS reports whether the first proxy saw https, from
// X-Forwarded-Proto or the standard Forwarded header.
func forwardedTLS(h http.Header) bool {
	secure := func(proto string) bool {
		proto = strings.Trim(strings.TrimSpace(proto), `"`)
		return strings.EqualFold(proto, "https") || strings.EqualFold(proto, "wss")
	}
	if v := h.Get("X-Forwarded-Proto"); v != "" {
		first, _, _ := strings.Cut(v, ",")
		return secure(first)
	}
	if v := h.Get("Forwarded"); v != "" {
		first, _, _ := strings.Cut(v, ",")
		for pair := range strings.SplitSeq(first, ";") {
			k, val, _ := strings.Cut(strings.TrimSpace(pair), "=")
			if strings.EqualFold(k, "proto") {
				return secure(val)
			}
		}
	}
	return false
}

func isWebOrMailURL(s string) bool {
	s = strings.ToLower(s)
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "mailto:")
}

func formatBytes(n int) string {
	switch {
	case n <= 0:
		return "no limit"
	case n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + " MiB"
	case n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + " KiB"
	}
	return groupThousands(int64(n)) + " bytes"
}

func humanDuration(d time.Duration) string {
	unit := func(n int64, name string) string {
		if n == 1 {
			return "1 " + name
		}
		return strconv.FormatInt(n, 10) + " " + name + "s"
	}
	switch {
	case d <= 0:
		return "0 seconds"
	case d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	case d%time.Second == 0:
		return unit(int64(d/time.Second), "second")
	}
	return d.String()
}

// groupThousands writes 1234567 as "1,234,567".
func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// pageTemplate is parsed once and only read afterwards (Execute is safe for
// concurrent use).
var pageTemplate = template.Must(template.New("page").Parse(pageHTML))

const pageHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Name}}</title>
<style>
:root { color-scheme: light dark; --fg: #1d1d1f; --muted: #6e6e73; --line: #d2d2d7; --box: #f5f5f7; --accent: #6d28d9; }
@media (prefers-color-scheme: dark) { :root { --fg: #f5f5f7; --muted: #a1a1a6; --line: #3a3a3c; --box: #1c1c1e; --accent: #a78bfa; } }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); }
main { max-width: 44rem; margin: 0 auto; padding: 2.5rem 1.25rem 3rem; }
header { display: flex; gap: 1rem; align-items: center; }
header img { width: 64px; height: 64px; border-radius: 12px; object-fit: cover; }
h1 { margin: 0; font-size: 1.9rem; line-height: 1.2; overflow-wrap: anywhere; }
h2 { font-size: 1.05rem; margin: 2rem 0 .6rem; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .04em; }
.desc { white-space: pre-line; overflow-wrap: anywhere; }
.url { display: block; padding: .8rem 1rem; background: var(--box); border: 1px solid var(--line); border-radius: 10px; font: 1.1rem/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; user-select: all; overflow-wrap: anywhere; }
.stats { display: flex; gap: 2.5rem; }
.stats b { display: block; font-size: 1.6rem; }
.stats span { color: var(--muted); font-size: .9rem; }
ul.nips { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .5rem; }
ul.nips a { display: inline-block; padding: .2rem .6rem; border: 1px solid var(--line); border-radius: 999px; text-decoration: none; }
a { color: var(--accent); }
table { border-collapse: collapse; width: 100%; }
td { padding: .35rem 0; border-bottom: 1px solid var(--line); vertical-align: top; }
td + td { text-align: right; padding-left: 1rem; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9rem; overflow-wrap: anywhere; }
footer { margin-top: 2.5rem; color: var(--muted); font-size: .9rem; }
</style>
</head>
<body>
<main>
<header>
{{- if .Icon}}<img src="{{.Icon}}" alt="">{{end}}
<h1>{{.Name}}</h1>
</header>
{{- if .Description}}
<p class="desc">{{.Description}}</p>
{{- end}}

<p>This is a <a href="https://github.com/nostr-protocol/nips">Nostr</a> relay. To use it, add this address to your Nostr client:</p>
<code class="url">{{.URL}}</code>

<h2>Now</h2>
<div class="stats">
<div><b>{{.Events}}</b><span>events stored</span></div>
<div><b>{{.Connections}}</b><span>open connections</span></div>
</div>

{{- if .NIPs}}
<h2>Supported NIPs</h2>
<ul class="nips">
{{- range .NIPs}}
<li><a href="{{.Link}}">{{.Label}}</a></li>
{{- end}}
</ul>
{{- end}}

<h2>Limits</h2>
<table>
{{- range .Limits}}
<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>
{{- end}}
</table>

{{- if .Self}}
<h2>Relay's own key</h2>
<p>Group state and member lists here are signed by</p>
<code class="url">{{.Self}}</code>
{{- end}}

{{- if or .Contact .PubKey}}
<h2>Operator</h2>
<table>
{{- if .Contact}}
<tr><td>Contact</td><td class="mono">{{if .ContactLink}}<a href="{{.Contact}}">{{.Contact}}</a>{{else}}{{.Contact}}{{end}}</td></tr>
{{- end}}
{{- if .PubKey}}
<tr><td>Public key</td><td class="mono">{{.PubKey}}</td></tr>
{{- end}}
</table>
{{- end}}

<footer>Powered by <a href="{{.Software}}">wisp</a>{{if .Version}} {{.Version}}{{end}}.
Relay information for clients (NIP-11) is served here with <span class="mono">Accept: application/nostr+json</span>.</footer>
</main>
</body>
</html>
`
