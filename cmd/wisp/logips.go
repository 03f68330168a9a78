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

// clientIPs returns the slog ReplaceAttr function that applies
// WISP_LOG_IPS to client addresses, or nil to log them in full. Nostr's
// users care first for their privacy, so by default an address is logged
// as a keyed hash: the same address gives the same tag for the whole run,
// which is enough to follow one client through the log, while the key,
// drawn at start and never stored, keeps anyone with the log from finding
// the address by hashing every IPv4 address there is.
func clientIPs(mode string) func(groups []string, a slog.Attr) slog.Attr {
	switch mode {
	case "full":
		return nil
	case "off":
		return func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == remoteAttr {
				return slog.Attr{} // dropped by the handler
			}
			return a
		}
	}
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	return func(_ []string, a slog.Attr) slog.Attr {
		if a.Key != remoteAttr {
			return a
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(a.Value.String()))
		return slog.String(remoteAttr, "ip-"+hex.EncodeToString(mac.Sum(nil)[:8]))
	}
}
