package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
)

// remoteAttr is the log attribute under which the relay (and the policy
// it calls) logs a client's IP address, on every line that has one.
const remoteAttr = "remote"

// ipMask applies WISP_LOG_IPS to client addresses, for the log and for
// the dashboard's busiest IPs alike, so that the operator finds a tag of
// the dashboard in the log. Nostr's users care first for their privacy,
// so by default an address is shown as a keyed hash: the same address
// gives the same tag for the whole run, which is enough to follow one
// client, while the key, drawn at start and never stored, keeps anyone
// with the log from finding the address by hashing every IPv4 address
// there is.
type ipMask struct {
	mode string // hashed, full or off
	key  []byte // hashed only
}

func newIPMask(mode string) ipMask {
	m := ipMask{mode: mode}
	if mode != "full" && mode != "off" {
		m.mode = "hashed"
		m.key = make([]byte, 32)
		rand.Read(m.key) // never fails (crypto/rand)
	}
	return m
}

// show returns ip as WISP_LOG_IPS says it may be shown: its tag, itself,
// or "" (off).
func (m ipMask) show(ip string) string {
	switch m.mode {
	case "full":
		return ip
	case "off":
		return ""
	}
	mac := hmac.New(sha256.New, m.key)
	mac.Write([]byte(ip))
	return "ip-" + hex.EncodeToString(mac.Sum(nil)[:8])
}

// replaceAttr is the slog ReplaceAttr function that applies the mask to
// client addresses, or nil to log them in full.
func (m ipMask) replaceAttr() func(groups []string, a slog.Attr) slog.Attr {
	if m.mode == "full" {
		return nil
	}
	return func(_ []string, a slog.Attr) slog.Attr {
		if a.Key != remoteAttr {
			return a
		}
		if m.mode == "off" {
			return slog.Attr{} // dropped by the handler
		}
		return slog.String(remoteAttr, m.show(a.Value.String()))
	}
}
