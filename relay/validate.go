package relay

import (
	"time"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/storage"
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
		return wisp.Reason(wisp.PrefixInvalid, "event too large")
	}
	if lim.MaxEventTags > 0 && len(ev.Tags) > lim.MaxEventTags {
		return wisp.Reason(wisp.PrefixInvalid, "too many tags")
	}
	if lim.MaxContentLength > 0 && len(ev.Content) > lim.MaxContentLength && utf8.RuneCountInString(ev.Content) > lim.MaxContentLength {
		return wisp.Reason(wisp.PrefixInvalid, "content too long")
	}
	// Compared in whole seconds, as created_at is.
	unix := now.Unix()
	if int64(ev.CreatedAt) > unix+int64(lim.CreatedAtFuture/time.Second) {
		return wisp.Reason(wisp.PrefixInvalid, "created_at too far in the future")
	}
	if lim.CreatedAtPast > 0 && int64(ev.CreatedAt) < unix-int64(lim.CreatedAtPast/time.Second) {
		return wisp.Reason(wisp.PrefixInvalid, "created_at too far in the past")
	}
	if lim.MaxTagValueBytes > 0 {
		for _, tag := range ev.Tags {
			for _, e := range tag {
				if len(e) > lim.MaxTagValueBytes {
					return wisp.Reason(wisp.PrefixInvalid, "tag element too long")
				}
			}
		}
	}
	exp, ok, err := storage.Expiration(ev.Tags)
	if err != nil {
		return wisp.Reason(wisp.PrefixInvalid, "malformed expiration tag")
	}
	if ok && exp <= unix {
		return wisp.Reason(wisp.PrefixInvalid, "event has expired")
	}
	return ""
}

// checkID reports whether ev.ID is the sha256 of its NIP-01 serialization.
func checkID(ev *nostr.Event) bool { return ev.CheckID() }

// verifySig reports whether the schnorr signature is valid. It uses
// go-nostr's CheckSignature: btcec, or libsecp256k1 when built with that tag.
func verifySig(ev *nostr.Event) bool {
	ok, err := ev.CheckSignature()
	return err == nil && ok
}
