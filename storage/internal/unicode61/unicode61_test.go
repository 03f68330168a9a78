package unicode61

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// TermSubstring relies on ſ and K being the only letters outside ASCII that
// fold into it; gen_table.go and storage/sqlite's tests check fold against SQLite itself.
func TestTermSubstring(t *testing.T) {
	var toASCII []rune
	for r := rune(utf8.RuneSelf); r <= unicode.MaxRune; r++ {
		if isAlnum(uint32(r)) && fold(r) < utf8.RuneSelf {
			toASCII = append(toASCII, r)
		}
	}
	if want := []rune{'\u017F', '\u212A'}; !slices.Equal(toASCII, want) {
		t.Errorf("letters folding to ASCII: %q, want %q", toASCII, want)
	}
	for term, want := range map[string]bool{"zap": true, "42": true, "nostr": false, "kind": false, "école": false, "": false} {
		if got := TermSubstring(term); got != want {
			t.Errorf("TermSubstring(%q) = %v, want %v", term, got, want)
		}
	}
}

// Words yields exactly the words CountTerms counts, in order, and
// Terms finds each of them as the one word it is.
func TestWords(t *testing.T) {
	for _, content := range []string{
		"", "Hello, World! héllo hello", "ÉCOLE e\u0301cole x_y-z don't C++", "a\x00hidden", "\xff\xfeok \u0301école",
		"https://example.com/path?q=1 #tag @name 日本語のテキスト",
	} {
		var words []string
		Words(content, func(w []byte) { words = append(words, string(w)) })
		distinct := slices.Compact(slices.Sorted(slices.Values(words)))
		tf := make([]int, len(distinct))
		if n := CountTerms(distinct, content, tf); n != len(words) {
			t.Errorf("%q: %d words, CountTerms counts %d", content, len(words), n)
		}
		for i, w := range distinct {
			if want := strings.Count(" "+strings.Join(words, " ")+" ", " "+w+" "); tf[i] != want {
				t.Errorf("%q: %q %d times, CountTerms %d", content, w, want, tf[i])
			}
			if got := Terms(w); !slices.Equal(got, []string{w}) {
				t.Errorf("%q: Terms of its word %q is %q", content, w, got)
			}
		}
	}
}
