package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// The relay's own URLs (WISP_PUBLIC_URL, WISP_OTHER_URLS) are what AUTH
// (NIP-42), NIP-98 and NIP-62 events must name; the relay never takes its
// name from a request's Host header (relay/identity.go). Without them only
// loopback names are accepted, which is right for a relay on a developer's
// machine and useless for one others reach: so a relay that listens beyond
// loopback and needs AUTH (WISP_AUTH=write or all) or NIP-86 (admins) is
// refused without WISP_PUBLIC_URL, and one that merely serves private
// messages is started with a warning (see warnings).

// validateURLs checks the relay's URLs and that the modes that need them
// have them.
func (c Config) validateURLs() []error {
	var errs []error
	bad := func(name string, value any, reason string) {
		errs = append(errs, fmt.Errorf("%s%s=%q: %s", envPrefix, name, fmt.Sprint(value), reason))
	}
	if c.PublicURL != "" && !isRelayURL(c.PublicURL) {
		bad("PUBLIC_URL", c.PublicURL, "want a ws:// or wss:// URL")
	}
	for _, u := range splitList(c.OtherURLs) {
		if !isRelayURL(u) {
			bad("OTHER_URLS", c.OtherURLs, fmt.Sprintf("%q is not a ws:// or wss:// URL", u))
		}
	}
	if c.PublicURL == "" && c.OtherURLs == "" && !listensOnLoopback(c.Listen) {
		switch {
		case c.Auth == "write" || c.Auth == "all":
			bad("AUTH", c.Auth, fmt.Sprintf("needs %sPUBLIC_URL when listening beyond loopback (%s): AUTH events must name this relay's URL, which is never taken from the request", envPrefix, c.Listen))
		case c.AdminPubkeys != "":
			bad("ADMIN_PUBKEYS", c.AdminPubkeys, fmt.Sprintf("needs %sPUBLIC_URL when listening beyond loopback (%s): NIP-98 headers must name this relay's URL, which is never taken from the request", envPrefix, c.Listen))
		}
	}
	return errs
}

// urlWarnings are the settings that work but deserve a line in the log.
func (c Config) urlWarnings() []string {
	if c.PublicURL == "" && c.OtherURLs == "" && !listensOnLoopback(c.Listen) {
		return []string{envPrefix + "PUBLIC_URL is not set: AUTH (NIP-42) accepts only loopback relay URLs, so remote clients cannot authenticate to read their private messages; set it to the URL clients use"}
	}
	return nil
}

func isRelayURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "ws" || u.Scheme == "wss") && u.Host != ""
}

// listensOnLoopback reports whether addr (host:port) is reachable only
// from this machine.
func listensOnLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// splitList splits a comma-separated setting, dropping empty items.
func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
