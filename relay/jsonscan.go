package relay

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"strings"
)

// jsonFail is a parse failure: msg (without prefix) is empty on success.
// syntax marks malformed JSON, after which nothing more can be read; the
// other failures leave a well-formed value that can be skipped.
type jsonFail struct {
	msg    string
	syntax bool
}

// jsonScanner is a strict, allocation-frugal JSON reader over one frame.
// Every method works in time linear in the bytes it consumes; recursion
// happens only in skipValue, bounded by its depth argument.
type jsonScanner struct {
	data []byte
	pos  int
	// src, when set, is a copy of data that strings are sliced from; when
	// empty, each string is copied on its own so that long-lived values (sub
	// ids, filters) do not pin the whole frame.
	src string
}

// typeFail is a wrongly typed value, or malformed JSON if the frame ended
// where the value should be.
func (s *jsonScanner) typeFail(msg string) jsonFail {
	if s.pos >= len(s.data) {
		return s.syntax()
	}
	return jsonFail{msg: msg}
}

func (s *jsonScanner) syntax() jsonFail {
	if s.pos >= len(s.data) {
		return jsonFail{msg: "malformed JSON: unexpected end", syntax: true}
	}
	return jsonFail{msg: "malformed JSON at byte " + strconv.Itoa(s.pos), syntax: true}
}

func (s *jsonScanner) skipWS() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the current byte, or 0 at the end.
func (s *jsonScanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *jsonScanner) consume(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

func (s *jsonScanner) substr(i, j int) string {
	if s.src != "" {
		return s.src[i:j]
	}
	return string(s.data[i:j])
}

// readKey reads a string that is only compared, never kept (object keys,
// the verb). Without escapes it returns a view of the frame and allocates
// nothing: callers switch on string(key), which the compiler does without
// a copy.
func (s *jsonScanner) readKey() ([]byte, jsonFail) {
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '"':
			s.pos = i + 1
			return s.data[start:i], jsonFail{}
		case c == '\\' || c < 0x20:
			v, f := s.readString()
			return []byte(v), f
		}
	}
	s.pos = len(s.data)
	return nil, s.syntax()
}

// readString reads a JSON string; the current byte must be '"'.
func (s *jsonScanner) readString() (string, jsonFail) {
	start := s.pos + 1
	// Fast path: the first quote ends the string unless a backslash comes
	// before it. IndexByte is vectorised; the control-byte test goes a word
	// at a time.
	q := bytes.IndexByte(s.data[start:], '"')
	if q < 0 {
		return "", s.skipString() // reports where it is malformed
	}
	end := start + q
	if i := bytes.IndexByte(s.data[start:end], '\\'); i >= 0 {
		return s.readEscaped(start, start+i)
	}
	if i := indexControl(s.data[start:end]); i >= 0 {
		s.pos = start + i
		return "", s.syntax()
	}
	s.pos = end + 1
	return s.substr(start, end), jsonFail{}
}

// indexControl returns the index of the first byte below 0x20 (not allowed
// raw in a JSON string), or -1. It tests eight bytes at a time.
func indexControl(b []byte) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		// Sets the high bit of each byte below 0x20 (bytes >= 0x80 are
		// excluded by &^x), with no false negatives; confirm bytewise.
		if (x-0x20*lo)&^x&hi != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] < 0x20 {
			return i
		}
	}
	return -1
}

// readEscaped decodes a string with escapes; i is the first backslash.
// Lone surrogates are refused: they have no UTF-8 form, so the id a client
// computed over them would be whatever its encoder made of them.
func (s *jsonScanner) readEscaped(start, i int) (string, jsonFail) {
	d := s.data
	// Find the end first: the decoded string is no longer than the raw one,
	// so one allocation of that size is enough, and Builder.String does
	// not copy it again.
	open := s.pos
	if f := s.skipString(); f.msg != "" {
		return "", f
	}
	end := s.pos - 1
	s.pos = open
	var buf strings.Builder
	buf.Grow(end - start)
	buf.Write(d[start:i])
	for i < end {
		if d[i] != '\\' {
			j := bytes.IndexByte(d[i:end], '\\')
			if j < 0 {
				j = end - i
			}
			buf.Write(d[i : i+j])
			i += j
			continue
		}
		switch d[i+1] {
		case '"', '\\', '/':
			buf.WriteByte(d[i+1])
		case 'b':
			buf.WriteByte('\b')
		case 'f':
			buf.WriteByte('\f')
		case 'n':
			buf.WriteByte('\n')
		case 'r':
			buf.WriteByte('\r')
		case 't':
			buf.WriteByte('\t')
		case 'u':
			r, _ := hex4(d, i+2) // checked by skipString
			i += 6
			if utf16IsSurrogate(r) {
				r2, ok := rune(0), false
				if r < 0xdc00 && i+1 < end && d[i] == '\\' && d[i+1] == 'u' {
					r2, ok = hex4(d, i+2)
					ok = ok && r2 >= 0xdc00 && r2 <= 0xdfff
				}
				if !ok {
					s.pos = end + 1
					return "", jsonFail{msg: "string has an unpaired surrogate escape"}
				}
				r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
				i += 6
			}
			buf.WriteRune(r)
			continue
		}
		i += 2
	}
	s.pos = end + 1
	return buf.String(), jsonFail{}
}

func utf16IsSurrogate(r rune) bool { return r >= 0xd800 && r <= 0xdfff }

// hex4 decodes the 4 hex digits of a \u escape starting at d[i].
func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// readHex reads a string of n lowercase hex digits. On a wrong string it
// still returns the string, so that the caller can echo a usable id.
func (s *jsonScanner) readHex(name string, n int) (string, jsonFail) {
	bad := func() string { return name + " must be " + strconv.Itoa(n) + " lowercase hex characters" }
	if s.peek() != '"' {
		return "", s.typeFail(bad())
	}
	v, f := s.readString()
	if f.msg != "" {
		return "", f
	}
	if !isLowerHex(v, n) {
		return v, jsonFail{msg: bad()}
	}
	return v, jsonFail{}
}

func isLowerHex(v string, n int) bool {
	if len(v) != n {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isHex is isLowerHex that also allows upper case: such an id is still a
// safe and recognisable thing to echo in an OK.
func isHex(v string, n int) bool {
	if len(v) != n {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i] | 0x20; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// readUint reads a non-negative integer that fits an int64. Fractions and
// exponents are refused even when integral (1.0, 1e3): no correct encoder
// writes an integer that way, and the id hash is over the integer form.
func (s *jsonScanner) readUint(name string) (int64, jsonFail) {
	c := s.peek()
	if c != '-' && (c < '0' || c > '9') {
		return 0, s.typeFail(name + " must be a non-negative integer")
	}
	start := s.pos
	neg, integral, f := s.scanNumber()
	switch {
	case f.msg != "":
		return 0, f
	case neg:
		return 0, jsonFail{msg: name + " must be a non-negative integer"}
	case !integral:
		return 0, jsonFail{msg: name + " must be an integer"}
	}
	var v int64
	for _, c := range s.data[start:s.pos] {
		d := int64(c - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, jsonFail{msg: name + " is too large"}
		}
		v = v*10 + d
	}
	return v, jsonFail{}
}

// scanNumber moves past a number of the JSON grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) scanNumber() (neg, integral bool, f jsonFail) {
	d := s.data
	digits := func() bool {
		from := s.pos
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
		return s.pos > from
	}
	neg = s.consume('-')
	switch c := s.peek(); {
	case c == '0':
		s.pos++
	case c >= '1' && c <= '9':
		digits()
	default:
		return neg, false, s.syntax()
	}
	integral = true
	if s.consume('.') {
		integral = false
		if !digits() {
			return neg, false, s.syntax()
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.pos++
		integral = false
		if c := s.peek(); c == '+' || c == '-' {
			s.pos++
		}
		if !digits() {
			return neg, false, s.syntax()
		}
	}
	return neg, integral, jsonFail{}
}

// skipValue moves past any JSON value, checking its syntax, with at most
// depth levels of nesting. It allocates nothing.
func (s *jsonScanner) skipValue(depth int) jsonFail {
	switch c := s.peek(); c {
	case '"':
		return s.skipString()
	case '{', '[':
		if depth <= 0 {
			return jsonFail{msg: "JSON nested too deeply", syntax: true}
		}
		s.pos++
		end := byte(']')
		if c == '{' {
			end = '}'
		}
		s.skipWS()
		if s.consume(end) {
			return jsonFail{}
		}
		for {
			s.skipWS()
			if c == '{' {
				if s.peek() != '"' {
					return s.syntax()
				}
				if f := s.skipString(); f.msg != "" {
					return f
				}
				s.skipWS()
				if !s.consume(':') {
					return s.syntax()
				}
				s.skipWS()
			}
			if f := s.skipValue(depth - 1); f.msg != "" {
				return f
			}
			s.skipWS()
			if s.consume(end) {
				return jsonFail{}
			}
			if !s.consume(',') {
				return s.syntax()
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		_, _, f := s.scanNumber()
		return f
	}
}

func (s *jsonScanner) literal(lit string) jsonFail {
	if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
		s.pos += len(lit)
		return jsonFail{}
	}
	return s.syntax()
}

// skipString moves past a string, checking its escapes and that it holds
// no raw control bytes.
func (s *jsonScanner) skipString() jsonFail {
	d := s.data
	i := s.pos + 1
	for {
		q := bytes.IndexByte(d[i:], '"')
		if q < 0 {
			s.pos = len(d)
			return s.syntax()
		}
		end := i + q
		b := bytes.IndexByte(d[i:end], '\\')
		if b < 0 {
			if c := indexControl(d[i:end]); c >= 0 {
				s.pos = i + c
				return s.syntax()
			}
			s.pos = end + 1
			return jsonFail{}
		}
		// An escape before the quote: check the run up to it, then the
		// escape, and look again from after it.
		b += i
		if c := indexControl(d[i:b]); c >= 0 {
			s.pos = i + c
			return s.syntax()
		}
		if b+1 >= len(d) {
			s.pos = len(d)
			return s.syntax()
		}
		switch d[b+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i = b + 2
		case 'u':
			if _, ok := hex4(d, b+2); !ok {
				s.pos = b
				return s.syntax()
			}
			i = b + 6
		default:
			s.pos = b
			return s.syntax()
		}
	}
}
