package relay

import (
	"net"
	"net/url"
	"strings"

	"github.com/nbd-wtf/go-nostr"
)

// Which relay am I? NIP-42 AUTH events, NIP-98 headers and NIP-62 requests
// to vanish name the relay they are meant for, and wisp must never take
// that name from the request: a relay that passes wisp's AUTH challenge on
// to a user gets back an AUTH signed for its own URL, and could present it
// to wisp with its own name in the Host header. So the names this relay
// answers to come from the configuration alone: the host names of
// Info.PublicURL and Info.OtherURLs. With neither set, only loopback names
// (localhost, 127.0.0.1, ::1) count, which serves a relay on a developer's
// machine and can never name a relay somewhere else.

// identity is the set of host names this relay answers to, fixed by New.
type identity struct {
	hosts []string // lowercase host names, no port; empty: loopback only
}

func newIdentity(info Info) identity {
	var id identity
	for _, u := range append([]string{info.PublicURL}, info.OtherURLs...) {
		if h := urlHost(u); h != "" && !strings.Contains(h, " ") {
			id.hosts = append(id.hosts, h)
		}
	}
	return id
}

// configured reports whether the operator named this relay's URLs.
func (id identity) configured() bool { return len(id.hosts) > 0 }

// isThisRelay reports whether a relay URL (ws, wss, http or https, any
// port and path) names this relay. NIP-42 suggests the host name is
// enough; a connection's challenge already binds the AUTH to it.
func (id identity) isThisRelay(u string) bool {
	h := urlHost(u)
	if h == "" {
		return false
	}
	if !id.configured() {
		return isLoopbackHost(h)
	}
	for _, mine := range id.hosts {
		if h == mine {
			return true
		}
	}
	return false
}

// namesThisRelay reports whether a request to vanish (NIP-62) is for this
// relay: a relay tag names it or ALL_RELAYS.
func (id identity) namesThisRelay(ev *nostr.Event) bool {
	for _, tag := range ev.Tags {
		if len(tag) >= 2 && tag[0] == "relay" && (tag[1] == allRelays || id.isThisRelay(tag[1])) {
			return true
		}
	}
	return false
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// urlHost is the lowercase host name of a URL, without port.
func urlHost(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		s = "ws://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}
