// Package unicode61 splits and folds text into words exactly as SQLite's
// unicode61 tokenizer does (fts3_unicode.c, remove_diacritics=0), which the
// SQLite engine's search index uses: so that a search served from the
// index, one served from events not indexed yet, and the relay's matching
// of live events all find the same events. Engines that index words
// themselves (PostgreSQL) use it for the same reason. Its tables come from
// SQLite itself: go generate ./storage/internal/unicode61.
package unicode61

import (
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

//go:generate go run gen_table.go

// MaxTerms is how many words of one search are used; the rest are
// ignored.
const MaxTerms = 16

// Terms returns the words a NIP-50 search string asks for, folded to
// lower case, each once, in order of first appearance. Space-separated
// key:value pairs are extensions (NIP-50), which wisp does not support and
// ignores. Words are split and folded exactly as the SQLite unicode61
// tokenizer of the search index does (mostly: runs of letters and digits).
func Terms(q string) []string {
	// Invalid UTF-8 becomes a separator, so that every term is valid UTF-8
	// that the index's tokenizer reads back as the same single word.
	q = strings.ToValidUTF8(q, "\uFFFD")
	var terms []string
	var buf []byte
	for _, field := range strings.Fields(q) {
		if isExtension(field) {
			continue
		}
		for i := 0; ; {
			var ok bool
			if buf, i, ok = nextWord(field, i, buf[:0]); !ok {
				break
			}
			if !slices.Contains(terms, string(buf)) {
				terms = append(terms, string(buf))
				if len(terms) == MaxTerms {
					return terms
				}
			}
		}
	}
	return terms
}

// isExtension reports whether a search token is a key:value pair.
func isExtension(tok string) bool {
	k, v, ok := strings.Cut(tok, ":")
	return ok && k != "" && v != ""
}

// Matches reports whether content holds every one of terms (as
// Terms returns them) as a whole word, exactly as the search index
// would find it. No terms match nothing.
func Matches(terms []string, content string) bool {
	if len(terms) == 0 {
		return false
	}
	var small [MaxTerms]int
	var tf []int
	if len(terms) <= len(small) {
		tf = small[:len(terms)]
	} else {
		tf = make([]int, len(terms))
	}
	CountTerms(terms, content, tf)
	for _, n := range tf {
		if n == 0 {
			return false
		}
	}
	return true
}

// CountTerms sets tf[i] to the number of times terms[i] occurs in content
// as a word and returns the number of words in content, both as the search
// index counts them (its tokens); tf must be as long as terms. Like the
// index, it reads content only up to a NUL character.
func CountTerms(terms []string, content string, tf []int) (words int) {
	clear(tf)
	if i := strings.IndexByte(content, 0); i >= 0 {
		content = content[:i]
	}
	var arr [64]byte
	buf := arr[:0]
	for i := 0; ; {
		var ok bool
		if buf, i, ok = nextWord(content, i, buf[:0]); !ok {
			return words
		}
		words++
		for j, t := range terms {
			if string(buf) == t {
				tf[j]++
			}
		}
	}
}

// Words calls fn with every word of content, folded, in order: the words
// CountTerms counts, so that an engine that builds its own index from them
// matches exactly what Matches matches. word is valid only during the
// call. Like CountTerms, it reads content only up to a NUL character.
func Words(content string, fn func(word []byte)) {
	if i := strings.IndexByte(content, 0); i >= 0 {
		content = content[:i]
	}
	var arr [64]byte
	buf := arr[:0]
	for i := 0; ; {
		var ok bool
		if buf, i, ok = nextWord(content, i, buf[:0]); !ok {
			return
		}
		fn(buf)
	}
}

// TermSubstring reports whether every text that holds term as a word (as
// CountTerms finds it) also holds term itself as a substring, ignoring
// ASCII case, so that a substring search can rule texts out cheaply before
// they are split into words. It holds for terms of ASCII letters and digits
// except s and k: the long s (U+017F) and the Kelvin sign (U+212A) fold
// to those, and are the only characters outside ASCII that fold into it.
func TermSubstring(term string) bool {
	for i := 0; i < len(term); i++ {
		c := term[i]
		if c >= utf8.RuneSelf || c == 's' || c == 'k' {
			return false
		}
	}
	return term != ""
}

// nextWord appends to buf the folded form of the first word of s at or
// after byte i and returns it with the index after the word; ok is false
// when no word is left. It is SQLite's unicode61 tokenizer (fts3_unicode.c,
// remove_diacritics=0) step by step: it decodes bytes as SQLite does, so
// that even invalid UTF-8 splits the same way, a word starts at a letter or
// digit and goes on over letters, digits and combining diacritics, and each
// character is folded and encoded as SQLite writes it.
func nextWord(s string, i int, buf []byte) (word []byte, next int, ok bool) {
	for {
		if i >= len(s) {
			return buf, i, false
		}
		c, n := decodeChar(s, i)
		i += n
		if isAlnum(c) {
			buf = appendChar(buf, fold(rune(c)))
			break
		}
	}
	for i < len(s) {
		c, n := decodeChar(s, i)
		i += n
		if !isAlnum(c) && !isDiacritic(c) {
			break
		}
		buf = appendChar(buf, fold(rune(c)))
	}
	return buf, i, true
}

// utf8Trans1 is SQLite's table of the payload bits of a UTF-8 lead byte.
var utf8Trans1 = [64]byte{
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x00, 0x01, 0x02, 0x03, 0x00, 0x01, 0x00, 0x00,
}

// decodeChar reads one character at s[i] as the tokenizer's READ_UTF8 does:
// the same as utf8.DecodeRuneInString on valid UTF-8, and on invalid input
// a stray continuation byte is the code point of its value and a lead byte
// takes every continuation byte that follows, in 32 bits.
func decodeChar(s string, i int) (c uint32, n int) {
	c, n = uint32(s[i]), 1
	if c < 0xc0 {
		return c, n
	}
	c = uint32(utf8Trans1[c-0xc0])
	for i+n < len(s) && s[i+n]&0xc0 == 0x80 {
		c = c<<6 + uint32(s[i+n]&0x3f)
		n++
	}
	if c < 0x80 || c&0xFFFFF800 == 0xD800 || c&0xFFFFFFFE == 0xFFFE {
		c = utf8.RuneError
	}
	return c, n
}

// appendChar encodes c as the tokenizer's WRITE_UTF8 does: as UTF-8 for a
// valid code point, and truncated to four bytes (or one, below zero) for the
// values only invalid input yields.
func appendChar(b []byte, c rune) []byte {
	switch {
	case c < 0x80:
		return append(b, byte(c))
	case c < 0x800:
		return append(b, 0xC0+byte(c>>6&0x1F), 0x80+byte(c&0x3F))
	case c < 0x10000:
		return append(b, 0xE0+byte(c>>12&0x0F), 0x80+byte(c>>6&0x3F), 0x80+byte(c&0x3F))
	}
	return append(b, 0xF0+byte(c>>18&0x07), 0x80+byte(c>>12&0x3F), 0x80+byte(c>>6&0x3F), 0x80+byte(c&0x3F))
}

// isAlnum reports whether the tokenizer takes c for a letter or digit:
// ASCII letters and digits, and every other value outside its separator
// table (search_table.go, generated from SQLite itself) that is not a
// combining diacritic, values past Unicode (from invalid input) included.
func isAlnum(c uint32) bool {
	if c < utf8.RuneSelf {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	if c >= 1<<22 {
		return true
	}
	r := rune(c)
	i := sort.Search(len(separators), func(i int) bool { return separators[i][1] >= r })
	return (i == len(separators) || r < separators[i][0]) && !isDiacritic(c)
}

// isDiacritic reports whether c is one of the combining diacritics
// (U+0300 to U+0331) that the tokenizer keeps inside a word but does not
// start one with; the masks are SQLite's sqlite3FtsUnicodeIsdiacritic.
func isDiacritic(c uint32) bool {
	const mask0, mask1 = 0x08029FDF, 0x000361F8
	switch {
	case c < 768 || c > 817:
		return false
	case c < 768+32:
		return mask0&(1<<(c-768)) != 0
	}
	return mask1&(1<<(c-768-32)) != 0
}

// fold lowers the case of r as the tokenizer does: unicode.ToLower, except
// where its (Unicode 6.1) tables say otherwise.
func fold(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	i := sort.Search(len(foldExceptions), func(i int) bool { return foldExceptions[i][0] >= r })
	if i < len(foldExceptions) && foldExceptions[i][0] == r {
		return foldExceptions[i][1]
	}
	return unicode.ToLower(r)
}
