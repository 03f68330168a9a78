package relay

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
)

// checkEvent returns "" if the event passes the relay's cheap checks, or a
// prefixed reason. raw is the event's canonical JSON (canonicalEvent), whose
// size is what MaxEventBytes bounds. The checks cost no hashing, so they run
// before checkID and verifySig.
//
// Kind 22242 (NIP-42 auth) is not refused here: the caller decides how EVENT
// and AUTH treat it.
func checkEvent(ev *nostr.Event, raw []byte, lim *Limits, now time.Time) string {
	if lim.MaxEventBytes > 0 && len(raw) > lim.MaxEventBytes {
		return reason(prefixInvalid, "event too large")
	}
	if lim.MaxEventTags > 0 && len(ev.Tags) > lim.MaxEventTags {
		return reason(prefixInvalid, "too many tags")
	}
	if lim.MaxContentLength > 0 && len(ev.Content) > lim.MaxContentLength && utf8.RuneCountInString(ev.Content) > lim.MaxContentLength {
		return reason(prefixInvalid, "content too long")
	}
	// Compared in whole seconds, as created_at is.
	unix := now.Unix()
	if int64(ev.CreatedAt) > unix+int64(lim.CreatedAtFuture/time.Second) {
		return reason(prefixInvalid, "created_at too far in the future")
	}
	if lim.CreatedAtPast > 0 && int64(ev.CreatedAt) < unix-int64(lim.CreatedAtPast/time.Second) {
		return reason(prefixInvalid, "created_at too far in the past")
	}
	if lim.MaxTagValueBytes > 0 {
		for _, tag := range ev.Tags {
			for _, e := range tag {
				if len(e) > lim.MaxTagValueBytes {
					return reason(prefixInvalid, "tag element too long")
				}
			}
		}
	}
	exp, ok, valid := eventExpiration(ev)
	if !valid {
		return reason(prefixInvalid, "malformed expiration tag")
	}
	if ok && exp <= unix {
		return reason(prefixInvalid, "event has expired")
	}
	return ""
}

// eventExpiration returns the NIP-40 expiration of ev: ok is false when it
// has none, valid is false when an expiration tag is malformed (no value, or
// not a decimal unix time). With several expiration tags the earliest wins,
// so that no reading of the event keeps it longer than its author allowed.
func eventExpiration(ev *nostr.Event) (exp int64, ok, valid bool) {
	for _, tag := range ev.Tags {
		if len(tag) == 0 || tag[0] != "expiration" {
			continue
		}
		if len(tag) < 2 {
			return 0, false, false
		}
		v, err := parseUnixTime(tag[1])
		if err != nil {
			return 0, false, false
		}
		if !ok || v < exp {
			exp, ok = v, true
		}
	}
	return exp, ok, true
}

// parseUnixTime accepts only plain decimal digits: strconv.ParseInt would
// also take a sign, and "+5" or "-0" are not what NIP-40 describes.
func parseUnixTime(s string) (int64, error) {
	if s == "" {
		return 0, strconv.ErrSyntax
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// checkID reports whether ev.ID is the sha256 of its NIP-01 serialization.
func checkID(ev *nostr.Event) bool { return ev.CheckID() }

// verifySig reports whether the schnorr signature is valid. It uses
// go-nostr's CheckSignature: btcec, or libsecp256k1 when built with that tag.
func verifySig(ev *nostr.Event) bool {
	ok, err := ev.CheckSignature()
	return err == nil && ok
}
