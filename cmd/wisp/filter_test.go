package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

// A filter the CLI cannot take as written is an error that names the key
// (or says where the JSON broke), never a filter that matches more.
func TestParseFiltersRefuses(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for _, tt := range []struct{ text, want string }{
		{`{"author":["` + hex + `"]}`, `unknown key "author" (did you mean "authors"?)`},
		{`{"foo":1}`, `unknown key "foo"`},
		{`{"kind":[1]}`, `unknown key "kind" (did you mean "kinds"?)`},
		{`{"e":["x"]}`, `unknown key "e" (did you mean "#e", the tag filter?)`},
		{`{"#ee":["x"]}`, `unknown key "#ee"`},
		{`{"ids":["abc"]}`, `"ids"[0]: "abc" is not 64 lowercase hex`},
		{`{"authors":["` + strings.ToUpper(hex) + `"]}`, `"authors"[0]`},
		{`{"authors":"` + hex + `"}`, `"authors": want an array of strings`},
		{`{"ids":null}`, `"ids": want an array of strings, got null`},
		{`{"kinds":[1,"7"]}`, `"kinds"[1]: "7" is not a kind`},
		{`{"kinds":"1"}`, `"kinds": want an array of kinds`},
		{`{"kinds":[-0]}`, `"kinds"[0]: -0 is not a kind`},
		{`{"limit":-0}`, `"limit": want a non-negative integer`},
		{`{"kinds":[1.5]}`, `"kinds"[0]: 1.5 is not a kind`},
		{`{"kinds":[70000]}`, `"kinds"[0]: 70000 is not a kind`},
		{`{"since":"2024-01-01"}`, `"since": want a non-negative integer (unix seconds)`},
		{`{"until":-5}`, `"until": want a non-negative integer`},
		{`{"limit":1e3}`, `"limit": want a non-negative integer`},
		{`{"search":5}`, `"search": want a string`},
		{`{"#p":[1]}`, `"#p": want an array of strings`},
		{`{"kinds":[1],"kinds":[2]}`, `duplicate key "kinds"`},
		{`[{"kinds":[1]},{"foo":1}]`, `filter 1: unknown key "foo"`},
		{`[{"kinds":[1]},5]`, `filter 1: want an object, got 5`},
		{`[]`, `empty array`},
		{`5`, `want a JSON object`},
		{`{"kinds":[1}`, `invalid character '}' after array element at character 12, after "{\"kinds\":[1"`},
		{`{"kinds":[1]`, `the JSON ends too early`},
		{`{"kinds":[1]} {}`, `after top-level value at character 15`},
		{``, `no filter given`},
	} {
		_, err := parseFilters(tt.text)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseFilters(%s) = %v, want an error with %q", tt.text, err, tt.want)
		}
	}
}

// What the CLI accepts means what it means in a REQ: absent keys are nil
// (no condition), empty lists are empty (nothing matches), limit 0 is
// LimitZero, tag keys lose their #.
func TestParseFiltersAccepts(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	ts := func(n int64) *nostr.Timestamp { v := nostr.Timestamp(n); return &v }
	for _, tt := range []struct {
		text string
		want []nostr.Filter
	}{
		{`{}`, []nostr.Filter{{}}},
		{` {"kinds":[0,3]} `, []nostr.Filter{{Kinds: []int{0, 3}}}},
		{`{"ids":["` + hex + `"],"authors":[]}`, []nostr.Filter{{IDs: []string{hex}, Authors: []string{}}}},
		{`{"#t":["nostr"],"#P":[],"since":10,"until":20,"limit":0}`,
			[]nostr.Filter{{Tags: nostr.TagMap{"t": {"nostr"}, "P": {}}, Since: ts(10), Until: ts(20), LimitZero: true}}},
		{`[{"search":"relay"},{"limit":5}]`, []nostr.Filter{{Search: "relay"}, {Limit: 5}}},
	} {
		got, err := parseFilters(tt.text)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseFilters(%s) = %#v, %v; want %#v", tt.text, got, err, tt.want)
		}
	}
}
