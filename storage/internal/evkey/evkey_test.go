package evkey

import (
	"strings"
	"testing"
)

func TestDecodeHex32(t *testing.T) {
	var k [32]byte
	if !DecodeHex32(strings.Repeat("0f", 32), &k) || k[0] != 0x0f || k[31] != 0x0f {
		t.Fatalf("decoded %x", k)
	}
	for _, bad := range []string{strings.Repeat("0F", 32), strings.Repeat("0f", 31), strings.Repeat("zz", 32), ""} {
		if DecodeHex32(bad, &k) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseAddress(t *testing.T) {
	pk := strings.Repeat("ab", 32)
	for _, c := range []struct {
		in   string
		kind int
		d    string
		ok   bool
	}{
		{"30023:" + pk + ":post", 30023, "post", true},
		{"30023:" + pk + ":", 30023, "", true},
		{"10002:" + pk + ":ignored", 10002, "", true},
		{"1:" + pk + ":x", 0, "", false},
		{"x:" + pk, 0, "", false},
		{"nothing", 0, "", false},
	} {
		kind, pubkey, d, ok := ParseAddress(c.in)
		if ok != c.ok || (ok && (kind != c.kind || pubkey != pk || d != c.d)) {
			t.Errorf("%q: %d %q %q %v", c.in, kind, pubkey, d, ok)
		}
	}
}

func TestIndexedTagName(t *testing.T) {
	for name, want := range map[string]bool{"e": true, "P": true, "t": true, "": false, "ee": false, "1": false, "-": false} {
		if IndexedTagName(name) != want {
			t.Errorf("%q: %v", name, !want)
		}
	}
}
