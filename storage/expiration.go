package storage

import (
	"errors"
	"strconv"

	"github.com/nbd-wtf/go-nostr"
)

// ErrBadExpiration: an expiration tag without a value, or whose value is
// not a plain decimal unix time.
var ErrBadExpiration = errors.New("malformed expiration tag")

// Expiration is wisp's one NIP-40 rule, which the relay's validation, the
// stores (and so queries, counts, live mirrors and the expiry sweep) all
// follow: an event expires at the earliest of its expiration tags, since
// no reading of it may keep it longer than its author allowed. ok is false
// when it has no well-formed expiration tag. err is ErrBadExpiration when
// a tag is malformed; exp and ok then still describe the well-formed ones
// (the relay refuses such an event, a store ignores the bad tags).
func Expiration(tags nostr.Tags) (exp int64, ok bool, err error) {
	for _, tag := range tags {
		if len(tag) == 0 || tag[0] != "expiration" {
			continue
		}
		if len(tag) < 2 {
			err = ErrBadExpiration
			continue
		}
		v, perr := parseUnixTime(tag[1])
		if perr != nil {
			err = ErrBadExpiration
			continue
		}
		if !ok || v < exp {
			exp, ok = v, true
		}
	}
	return exp, ok, err
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
