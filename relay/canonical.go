package relay

import (
	"strconv"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
)

// canonicalEvent returns the JSON the relay stores and sends for ev, with the
// fields in NIP-01 order. Strings are escaped as in the NIP-01 serialization
// that the id hashes (go-nostr's, which matches JSON.stringify); invalid UTF-8,
// which parseClientMsg never lets through, becomes U+FFFD so the output is
// always valid JSON. go-nostr's MarshalJSON is correct but puts kind first.
func canonicalEvent(ev *nostr.Event) []byte {
	n := 64 + len(ev.ID) + len(ev.PubKey) + len(ev.Sig) + len(ev.Content) + 2
	for _, t := range ev.Tags {
		n += 3
		for _, e := range t {
			n += len(e) + 3
		}
	}
	b := make([]byte, 0, n+n/16)
	b = append(b, `{"id":`...)
	b = appendJSONString(b, ev.ID)
	b = append(b, `,"pubkey":`...)
	b = appendJSONString(b, ev.PubKey)
	b = append(b, `,"created_at":`...)
	b = strconv.AppendInt(b, int64(ev.CreatedAt), 10)
	b = append(b, `,"kind":`...)
	b = strconv.AppendInt(b, int64(ev.Kind), 10)
	b = append(b, `,"tags":[`...)
	for i, t := range ev.Tags {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j, e := range t {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, e)
		}
		b = append(b, ']')
	}
	b = append(b, `],"content":`...)
	b = appendJSONString(b, ev.Content)
	b = append(b, `,"sig":`...)
	b = appendJSONString(b, ev.Sig)
	return append(b, '}')
}

// appendJSONString appends s as a JSON string, escaping as NIP-01's
// serialization does: the short escapes for \b \t \n \f \r " \, \u00XX for
// other control characters, everything else verbatim.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for len(s) > 0 {
		n := plainPrefix(s)
		b = append(b, s[:n]...)
		if s = s[n:]; len(s) == 0 {
			break
		}
		c := s[0]
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s)
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[:size]...)
			}
			s = s[size:]
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\f':
			b = append(b, '\\', 'f')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		s = s[1:]
	}
	return append(b, '"')
}

// plainPrefix returns the length of the prefix of s made of printable ASCII
// other than '"' and '\\', which JSON copies verbatim. It tests eight bytes
// at a time.
func plainPrefix(s string) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		q := x ^ '"'*lo
		bs := x ^ '\\'*lo
		// High bit set in a byte that is < 0x20, '"', '\\' or >= 0x80
		// (may flag bytes after a true hit, never miss one).
		if ((x-0x20*lo)|(q-lo)|(bs-lo)|x)&hi != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			break
		}
	}
	return i
}
