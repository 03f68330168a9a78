package unicode61

import (
	"slices"
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
