package relay

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

// Policy decides who may connect, read and write; package policy has the
// implementation cmd/wisp wires in. A nil Policy lets everyone in (the
// protocol's own rules, NIP-42 AUTH, NIP-70 and private-message visibility,
// still apply).
type Policy interface {
	// Connect decides on a new websocket from remote; release is called
	// when an accepted connection ends.
	Connect(remote string, now time.Time) (d wisp.Decision, release func())
	// Read decides on a REQ.
	Read(in *wisp.ReadInput) wisp.Decision
	// Early judges an event before its signature is checked, on the
	// connection's reader: rules that need nothing verified.
	Early(ctx context.Context, in *wisp.Input) wisp.Decision
	// Late judges an event after its signature is checked, on the verify
	// workers (never the writer): rules that trust the pubkey or may block.
	Late(ctx context.Context, in *wisp.Input) wisp.Decision
	// AuthMode says whether AUTH is needed to write, or to do anything.
	AuthMode() wisp.AuthMode
	// Limitation is what NIP-11 advertises about the policy.
	Limitation() wisp.Limitation
}

// Manager carries out NIP-86 management calls (package policy's Admin). The relay checks NIP-98 authorization and the admin list first.
type Manager interface {
	Methods() []string
	Call(ctx context.Context, caller, method string, params []json.RawMessage) (any, error)
	// Info returns base with the changes admins made (name, description, icon).
	Info(base wisp.RelayInfo) wisp.RelayInfo
}

// alwaysNIPs are implemented whatever the configuration: NIP-17/59
// visibility of private messages, NIP-42 AUTH, NIP-62 requests to vanish,
// NIP-70 protected events.
var alwaysNIPs = []int{17, 42, 59, 62, 70}

// nips are the NIPs advertised: the core ones, those always on, NIP-13
// when proof of work is required and NIP-86 when the management API is on.
func (r *Relay) nips() []int {
	out := slices.Concat(supportedNIPs, alwaysNIPs)
	if r.cfg.Policy != nil && r.cfg.Policy.Limitation().MinPoW > 0 {
		out = append(out, 13)
	}
	if r.managementEnabled() {
		out = append(out, 86)
	}
	if r.searchEnabled() { // NIP-50, see search.go
		out = append(out, 50)
	}
	if r.cfg.Negentropy.Enabled { // NIP-77, see negentropy.go
		out = append(out, 77)
	}
	if r.cfg.Groups != nil { // NIP-29, see keeper.go
		out = append(out, 29)
	}
	if r.cfg.Membership != nil { // NIP-43, see membership.go
		out = append(out, 43)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// nip29 is NIP-11's "nip29" object, when groups are on.
func (r *Relay) nip29() any {
	if r.cfg.Groups == nil {
		return nil
	}
	return r.cfg.Groups.NIP11()
}

// extraLimits are the front page's rows of groups and membership.
func (r *Relay) extraLimits() []wisp.LimitRow {
	var rows []wisp.LimitRow
	if r.cfg.Groups != nil {
		rows = append(rows, r.cfg.Groups.Limits()...)
	}
	if r.cfg.Membership != nil {
		rows = append(rows, r.cfg.Membership.Limits()...)
	}
	return rows
}

// limitation is the policy part of NIP-11's limitation object.
func (r *Relay) limitation() wisp.Limitation {
	if r.cfg.Policy == nil {
		return wisp.Limitation{}
	}
	return r.cfg.Policy.Limitation()
}

// info is the operator's description with what admins changed over NIP-86.
func (r *Relay) info() Info {
	info := r.live.Load().Info
	if r.cfg.Manager != nil {
		ri := r.cfg.Manager.Info(wisp.RelayInfo{Name: info.Name, Description: info.Description, Icon: info.Icon})
		info.Name, info.Description, info.Icon = ri.Name, ri.Description, ri.Icon
	}
	return info
}

// ClientIP is the address of an HTTP request's client by the relay's
// rule (clientIP), for the other handlers on its port.
func (r *Relay) ClientIP(req *http.Request) string { return r.clientIP(req) }

// clientIP is the client's address: the TCP peer, or with RealIPHeader set
// (behind a reverse proxy) the last address in that header, the one the
// proxy added.
func (r *Relay) clientIP(req *http.Request) string {
	if h := r.cfg.RealIPHeader; h != "" {
		if v := req.Header.Values(h); len(v) > 0 {
			parts := strings.Split(v[len(v)-1], ",")
			ip := strings.TrimSpace(parts[len(parts)-1])
			if host, _, err := net.SplitHostPort(ip); err == nil {
				ip = host
			}
			if parsed := net.ParseIP(strings.Trim(ip, "[]")); parsed != nil {
				return parsed.String()
			}
		}
	}
	return remoteAddr(req)
}

// admitConn asks the policy about a new websocket. It answers a refused one
// over HTTP (403 blocked, 429 rate-limited) and reports false.
func (r *Relay) admitConn(w http.ResponseWriter, remote string) (release func(), ok bool) {
	if r.cfg.Policy == nil {
		return func() {}, true
	}
	d, release := r.cfg.Policy.Connect(remote, time.Now())
	if d.Action == wisp.Accept {
		if release == nil {
			release = func() {}
		}
		return release, true
	}
	status := http.StatusForbidden
	if wisp.IsReason(d.Reason, wisp.PrefixRateLimited) {
		status = http.StatusTooManyRequests
		w.Header().Set("Retry-After", "10")
	}
	r.metrics().Refused(RefusedConnection, reasonPrefix(d.Reason))
	r.log.Debug("connection refused", "remote", remote, "reason", d.Reason)
	http.Error(w, d.Reason, status)
	return nil, false
}

// judgeLate runs the policy's late stage on a verify worker. It answers a
// refused event and reports false.
func (r *Relay) judgeLate(p *pending) bool {
	if p.in == nil || r.cfg.Policy == nil {
		return true
	}
	d := r.cfg.Policy.Late(r.ctx, p.in)
	switch d.Action {
	case wisp.Accept:
		return true
	case wisp.ShadowReject:
		r.stats.rejected.Add(1)
		r.answer(p, true, "")
	default:
		r.stats.rejected.Add(1)
		if p.c != nil && wisp.IsReason(d.Reason, wisp.PrefixAuthRequired) {
			p.c.sendChallenge()
		}
		r.answer(p, false, d.Reason)
	}
	return false
}

// admitReq runs the read policy and the private-message rule for a REQ. It
// answers a refused one with CLOSED and returns false.
func (c *conn) admitReq(subID string, filters []nostr.Filter) bool {
	r := c.r
	authed := c.auth.pubkeys()
	closed := func(why string) bool {
		if wisp.IsReason(why, wisp.PrefixAuthRequired) {
			c.sendChallenge()
		}
		c.closed(subID, why)
		return false
	}
	if r.cfg.Policy != nil {
		d := r.cfg.Policy.Read(&wisp.ReadInput{Remote: c.remote, Authed: authed, Filters: filters, Time: time.Now()})
		if d.Action != wisp.Accept {
			return closed(d.Reason)
		}
	}
	if len(authed) == 0 && onlyPrivateKinds(filters) {
		return closed(wisp.Reason(wisp.PrefixAuthRequired, "private messages are served only to their recipients; authenticate first"))
	}
	if why := c.guardRefusal(filters); why != "" {
		return closed(why)
	}
	return true
}

func isProtected(ev *nostr.Event) bool { return hasProtectedTag(ev.Tags) }

func hasProtectedTag(tags nostr.Tags) bool {
	for _, tag := range tags {
		if len(tag) >= 1 && tag[0] == "-" {
			return true
		}
	}
	return false
}

// Repost kinds (NIP-18), whose content may embed the reposted event.
const (
	kindRepost        = 6
	kindGenericRepost = 16
)

// embedsOthersProtected reports whether ev is a repost whose content embeds
// a protected event (NIP-70) by another author. Only content that could
// hold a ["-"] tag is decoded.
func embedsOthersProtected(ev *nostr.Event) bool {
	if ev.Kind != kindRepost && ev.Kind != kindGenericRepost || !strings.Contains(ev.Content, `"-"`) {
		return false
	}
	var inner struct {
		PubKey string     `json:"pubkey"`
		Tags   nostr.Tags `json:"tags"`
	}
	if json.Unmarshal([]byte(ev.Content), &inner) != nil {
		return false
	}
	return hasProtectedTag(inner.Tags) && inner.PubKey != ev.PubKey
}
