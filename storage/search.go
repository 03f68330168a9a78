package storage

import (
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Searcher is implemented by engines that serve NIP-50 search filters.
//
// A filter with Search matches the events of the indexed kinds whose content
// holds every word of the search (whole words, ignoring case; see
// SearchTerms), and the filter's other fields as usual. Query serves a
// search filter by relevance, best first, ties newest first, instead of by
// time; a search without words matches nothing.
type Searcher interface {
	// SearchKinds returns the kinds whose content is indexed, ascending;
	// empty means search is off and search filters match nothing.
	SearchKinds() []int
}

// MaxSearchTerms is how many words of one search are used; the rest are
// ignored.
const MaxSearchTerms = 16

// SearchTerms returns the words a NIP-50 search string asks for, folded to
// lower case, each once, in order of first appearance. Space-separated
// key:value pairs are extensions (NIP-50), which wisp does not support and
// ignores. Words are split and folded exactly as the SQLite unicode61
// tokenizer of the search index does (mostly: runs of letters and digits).
func SearchTerms(q string) []string {
	var terms []string
	for _, field := range strings.Fields(q) {
		if isExtension(field) {
			continue
		}
		for _, w := range words(field) {
			if !slices.Contains(terms, w) {
				terms = append(terms, w)
				if len(terms) == MaxSearchTerms {
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

// MatchesSearch reports whether content holds every one of terms (as
// SearchTerms returns them) as a whole word. No terms match nothing.
func MatchesSearch(terms []string, content string) bool {
	if len(terms) == 0 {
		return false
	}
	have := words(content)
	for _, t := range terms {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// words splits s into lower-case words.
func words(s string) []string {
	var out []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			out = append(out, b.String())
			b.Reset()
		}
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if !isWordRune(r) {
			flush()
			continue
		}
		b.WriteRune(fold(r))
	}
	flush()
	return out
}

// isWordRune reports whether r is part of a word for SQLite's unicode61
// tokenizer: ASCII letters and digits, and every other code point outside
// its separator table (search_table.go, generated from SQLite itself).
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	i := sort.Search(len(separators), func(i int) bool { return separators[i][1] >= r })
	return i == len(separators) || r < separators[i][0]
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
