// Package evkey holds what every storage engine reads the same way from an
// event's fields: 32-byte ids and pubkeys from hex, NIP-01 addresses, and
// which tag names are indexed.
package evkey

import (
	"strconv"
	"strings"

	"github.com/nbd-wtf/go-nostr"
)

// DecodeHex32 decodes 64 lowercase hex digits into dst. Uppercase is refused
// on purpose: ids and pubkeys are lowercase on the wire, and a filter value
// in another case must not match.
func DecodeHex32(s string, dst *[32]byte) bool {
	if len(s) != 64 {
		return false
	}
	for i := range 32 {
		hi, ok1 := hexNibble(s[2*i])
		lo, ok2 := hexNibble(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func hexNibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// ParseAddress splits an a-tag value "kind:pubkey:d". Replaceable kinds have
// no d, so whatever follows the pubkey is ignored for them.
func ParseAddress(s string) (kind int, pubkey, d string, ok bool) {
	k, rest, found := strings.Cut(s, ":")
	if !found {
		return 0, "", "", false
	}
	kind, err := strconv.Atoi(k)
	if err != nil {
		return 0, "", "", false
	}
	pubkey, d, _ = strings.Cut(rest, ":")
	switch {
	case nostr.IsReplaceableKind(kind):
		d = ""
	case nostr.IsAddressableKind(kind):
	default:
		return 0, "", "", false
	}
	return kind, pubkey, d, true
}

// IndexedTagName reports whether a tag name goes to the tags table: single
// ASCII letters, as NIP-01 indexes.
func IndexedTagName(name string) bool {
	return len(name) == 1 && ('a' <= name[0] && name[0] <= 'z' || 'A' <= name[0] && name[0] <= 'Z')
}

// NextPrefix is the smallest byte string greater than every string that
// starts with p, or nil when p is all 0xff.
func NextPrefix(p []byte) []byte {
	n := append([]byte(nil), p...)
	for i := len(n) - 1; i >= 0; i-- {
		if n[i] < 0xff {
			n[i]++
			return n[:i+1]
		}
	}
	return nil
}
