package relay

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsonDepth is the deepest nesting of arrays and objects in valid JSON.
func jsonDepth(data []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range data {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// FuzzJSONScanner holds the scanner to encoding/json: it accepts exactly
// the valid JSON documents (up to its nesting bound), and a string it reads
// is the string encoding/json reads, but for the lone surrogates it refuses
// on purpose (they have no UTF-8 form).
func FuzzJSONScanner(f *testing.F) {
	for _, s := range []string{`{}`, `[1,2,{"a":"b"}]`, `"x\u00e9\n"`, `-0.5e+3`, `[true,false,null]`, `{"a":[]}`,
		`"\ud83d\ude00"`, `"\ud800"`, `[1,]`, `{"a" 1}`, `01`, "\"a\x01\"", `"\x"`, ` [ ] `, `1.`, `[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return // frames are checked for UTF-8 before they reach the scanner
		}
		s := jsonScanner{data: data}
		s.skipWS()
		fail := s.skipValue(maxSkipDepth)
		if fail.msg == "" {
			fail = s.trailing()
		}
		valid := json.Valid(data)
		if valid && jsonDepth(data) > maxSkipDepth {
			if fail.msg == "" {
				t.Fatalf("accepted %q, nested deeper than %d", data, maxSkipDepth)
			}
			return
		}
		if (fail.msg == "") != valid {
			t.Fatalf("scanner accepts %q: %v (%q); encoding/json: %v", data, fail.msg == "", fail.msg, valid)
		}

		trimmed := bytes.TrimSpace(data)
		if !valid || len(trimmed) == 0 || trimmed[0] != '"' {
			return
		}
		var want string
		if err := json.Unmarshal(trimmed, &want); err != nil {
			t.Fatal(err)
		}
		s = jsonScanner{data: trimmed}
		got, fail := s.readString()
		if fail.msg != "" {
			if bytes.Contains(bytes.ToLower(trimmed), []byte(`\ud`)) {
				return // a lone surrogate, refused on purpose
			}
			t.Fatalf("readString(%q) failed: %s", trimmed, fail.msg)
		}
		if got != want {
			t.Fatalf("readString(%q) = %q, want %q", trimmed, got, want)
		}
	})
}

func TestStoredID(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for raw, want := range map[string]string{
		`{"id":"` + id + `","kind":1}`:                                            id,
		` { "kind" : 1, "tags":[["e","x"]], "content":"}", "id" : "` + id + `" }`: id,
		`{"kind":1,"content":"no id"}`:                                            "",
		`{"id":"ABAB"}`:                                                           "",
		`["id","` + id + `"]`:                                                     "",
		`{"kind":1,`:                                                              "",
	} {
		if got := storedID([]byte(raw)); got != want {
			t.Errorf("storedID(%s) = %q, want %q", raw, got, want)
		}
	}
}

// FuzzStoredID holds storedID to encoding/json: for a JSON object whose
// keys are distinct and whose "id" is 64 lowercase hex digits, it finds
// that id (within the scanner's nesting bound); otherwise it finds nothing
// or a well-formed id, never a wrong one.
func FuzzStoredID(f *testing.F) {
	id := strings.Repeat("0f", 32)
	for _, s := range []string{`{"id":"` + id + `"}`, `{"kind":1,"tags":[["id","x"]],"id":"` + id + `"}`,
		`{"content":"\"id\":\"` + id + `\""}`, `{"id":1}`, `{"ID":"` + id + `"}`, `{"i\u0064":"` + id + `"}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := storedID(data)
		if got != "" && !isLowerHex(got, 64) {
			t.Fatalf("storedID(%q) = %q, not an id", data, got)
		}
		if !utf8.Valid(data) || !json.Valid(data) || jsonDepth(data) > maxSkipDepth {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return
		}
		seen := map[string]bool{}
		want := ""
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			key := tok.(string)
			if seen[key] {
				return // duplicate keys: no single answer
			}
			seen[key] = true
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			var s string
			if key == "id" && json.Unmarshal(v, &s) == nil && isLowerHex(s, 64) {
				want = s
			}
		}
		if got != want {
			t.Fatalf("storedID(%s) = %q, want %q", data, got, want)
		}
	})
}
