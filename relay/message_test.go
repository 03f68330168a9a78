package relay

import (
	"encoding/json"
	"math"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

var (
	hexID  = strings.Repeat("ab", 32)
	hexPub = strings.Repeat("cd", 32)
	hexSig = strings.Repeat("ef", 64)
)

// evFields is a valid event object's fields, in order; tests change one.
func evFields() [][2]string {
	return [][2]string{
		{"id", `"` + hexID + `"`},
		{"pubkey", `"` + hexPub + `"`},
		{"created_at", `1700000000`},
		{"kind", `1`},
		{"tags", `[["e","` + hexID + `"],["t","nostr"]]`},
		{"content", `"hello \"world\"\n"`},
		{"sig", `"` + hexSig + `"`},
	}
}

// evObj builds an event object from evFields with field k set to v (v ""
// drops the field; an unknown k is added).
func evObj(k, v string) string {
	fields := evFields()
	found := false
	var parts []string
	for _, f := range fields {
		if f[0] == k {
			found = true
			if v == "" {
				continue
			}
			f[1] = v
		}
		parts = append(parts, strconv.Quote(f[0])+":"+f[1])
	}
	if !found && k != "" {
		parts = append(parts, strconv.Quote(k)+":"+v)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func evFrame(k, v string) string { return `["EVENT",` + evObj(k, v) + `]` }

// answerKind names how a parse error is answered.
func answerKind(e *parseError) string {
	switch {
	case e == nil:
		return "accept"
	case e.eventID != "":
		return "OK"
	case e.closed:
		return "CLOSED"
	}
	return "NOTICE"
}

type parseCase struct {
	name  string
	frame string
	want  string // accept, OK, CLOSED, NOTICE
	msg   string // substring of the reason (after "invalid: ")
}

func parseCases() []parseCase {
	sub64 := strings.Repeat("s", 64)
	sub65 := strings.Repeat("s", 65)
	ids := func(n int) string {
		v := make([]string, n)
		for i := range v {
			v[i] = `"` + hexID + `"`
		}
		return "[" + strings.Join(v, ",") + "]"
	}
	filters := func(n int) string { return strings.Repeat(`,{}`, n) }
	return []parseCase{
		// Good frames.
		{"event", evFrame("", ""), "accept", ""},
		{"event with whitespace", " [ \"EVENT\" ,\n\t" + evObj("", "") + " ] \r\n", "accept", ""},
		{"event unknown field", evFrame("relays", `{"a":[1,2,{"b":null}],"c":true}`), "accept", ""},
		{"event empty tags", evFrame("tags", `[]`), "accept", ""},
		{"event escaped content", evFrame("content", `"\u00e9\ud83d\ude00\/\b\f\t\r\u0000"`), "accept", ""},
		{"event escaped key", strings.Replace(evFrame("", ""), `"kind"`, `"\u006bind"`, 1), "accept", ""},
		{"event missing kind", evFrame("kind", ""), "OK", "missing field \"kind\""},
		{"event created_at 0", evFrame("created_at", `0`), "accept", ""},
		{"event created_at max int64", evFrame("created_at", `9223372036854775807`), "accept", ""},
		{"event kind 65535", evFrame("kind", `65535`), "accept", ""},
		{"auth", `["AUTH",` + evObj("kind", "22242") + `]`, "accept", ""},
		{"req one filter", `["REQ","sub",{}]`, "accept", ""},
		{"req full filter", `["REQ","sub",{"ids":["` + hexID + `"],"authors":[],"kinds":[0,1,65535],"#e":["x"],"#T":[],"since":1,"until":2,"limit":0,"search":"q","x-unknown":{"deep":[1]}}]`, "accept", ""},
		{"req sub id 64", `["REQ","` + sub64 + `",{}]`, "accept", ""},
		{"req sub id 64 runes", `["REQ","` + strings.Repeat("é", 64) + `",{}]`, "accept", ""},
		{"req max filters", `["REQ","s"` + filters(10) + `]`, "accept", ""},
		{"req max values", `["REQ","s",{"ids":` + ids(500) + `}]`, "accept", ""},
		{"count", `["COUNT","c",{"kinds":[1]},{}]`, "accept", ""},
		{"close", `["CLOSE","sub"]`, "accept", ""},

		// Not a message.
		{"empty frame", ``, "NOTICE", "must be a JSON array"},
		{"malformed json", `["EVENT",{`, "NOTICE", "malformed JSON"},
		{"not an array", `{"EVENT":1}`, "NOTICE", "must be a JSON array"},
		{"string", `"EVENT"`, "NOTICE", "must be a JSON array"},
		{"empty array", `[]`, "NOTICE", "empty message"},
		{"verb not string", `[1,2]`, "NOTICE", "message type must be a string"},
		{"verb nested", strings.Repeat("[", 10000), "NOTICE", "message type must be a string"},
		{"unknown verb", `["HELLO",1]`, "NOTICE", `unknown message type "HELLO"`},
		{"lower case verb", `["event",{}]`, "NOTICE", `unknown message type "event"`},
		{"long verb truncated", `["` + strings.Repeat("X", 1000) + `"]`, "NOTICE", `unknown message type "` + strings.Repeat("X", 32) + `…"`},
		{"invalid utf8", "[\"EVENT\",{\"content\":\"\xff\"}]", "NOTICE", "not valid UTF-8"},
		{"invalid utf8 in event", `["EVENT",` + evObj("content", "\"\xc3\x28\"") + `]`, "NOTICE", "not valid UTF-8"},
		{"utf8 surrogate", "[\"CLOSE\",\"\xed\xa0\x80\"]", "NOTICE", "not valid UTF-8"},
		{"trailing data", `["CLOSE","s"] x`, "NOTICE", "malformed JSON"},
		{"two messages", `["CLOSE","s"]["CLOSE","s"]`, "NOTICE", "malformed JSON"},
		{"too large", `["CLOSE","` + strings.Repeat("a", 600*1024) + `"]`, "NOTICE", "message too large"},

		// EVENT.
		{"event missing", `["EVENT"]`, "NOTICE", "EVENT needs an event"},
		{"event not object", `["EVENT","x"]`, "NOTICE", "event must be a JSON object"},
		{"event two events", `["EVENT",` + evObj("", "") + `,{}]`, "OK", "exactly one event"},
		{"event trailing garbage", `["EVENT",` + evObj("", "") + `]]`, "OK", "malformed JSON"},
		{"event truncated after id", `["EVENT",{"id":"` + hexID + `","kind":`, "OK", "malformed JSON"},
		{"event empty object", `["EVENT",{}]`, "NOTICE", `missing field "id"`},
		{"event missing id", evFrame("id", ""), "NOTICE", `missing field "id"`},
		{"event missing sig", evFrame("sig", ""), "OK", `missing field "sig"`},
		{"event duplicate field", `["EVENT",` + strings.TrimSuffix(evObj("", ""), "}") + `,"kind":2}]`, "OK", `duplicate field "kind"`},
		{"event id upper hex", evFrame("id", `"`+strings.ToUpper(hexID)+`"`), "OK", "id must be 64 lowercase hex"},
		{"event id short", evFrame("id", `"abcd"`), "NOTICE", "id must be 64 lowercase hex"},
		{"event id not hex", evFrame("id", `"`+strings.Repeat("zz", 32)+`"`), "NOTICE", "id must be 64 lowercase hex"},
		{"event id number", evFrame("id", `12`), "NOTICE", "id must be 64 lowercase hex"},
		{"event pubkey upper", evFrame("pubkey", `"`+strings.ToUpper(hexPub)+`"`), "OK", "pubkey must be 64 lowercase hex"},
		{"event sig short", evFrame("sig", `"`+hexID+`"`), "OK", "sig must be 128 lowercase hex"},
		{"event sig null", evFrame("sig", `null`), "OK", "sig must be 128 lowercase hex"},
		{"event created_at negative", evFrame("created_at", `-1`), "OK", "created_at must be a non-negative integer"},
		{"event created_at minus zero", evFrame("created_at", `-0`), "OK", "created_at must be a non-negative integer"},
		{"event created_at float", evFrame("created_at", `1700000000.5`), "OK", "created_at must be an integer"},
		{"event created_at integral float", evFrame("created_at", `1700000000.0`), "OK", "created_at must be an integer"},
		{"event created_at exponent", evFrame("created_at", `17e8`), "OK", "created_at must be an integer"},
		{"event created_at huge", evFrame("created_at", `9223372036854775808`), "OK", "created_at is too large"},
		{"event created_at very huge", evFrame("created_at", strings.Repeat("9", 5000)), "OK", "created_at is too large"},
		{"event created_at string", evFrame("created_at", `"1700000000"`), "OK", "created_at must be a non-negative integer"},
		{"event created_at leading zero", evFrame("created_at", `01`), "OK", "malformed JSON"},
		{"event created_at NaN", evFrame("created_at", `NaN`), "OK", "malformed JSON"},
		{"event created_at Infinity", evFrame("created_at", `Infinity`), "OK", "malformed JSON"},
		{"event kind too big", evFrame("kind", `65536`), "OK", "kind must be an integer between 0 and 65535"},
		{"event kind negative", evFrame("kind", `-1`), "OK", "kind must be a non-negative integer"},
		{"event kind bool", evFrame("kind", `true`), "OK", "kind must be a non-negative integer"},
		{"event tags object", evFrame("tags", `{}`), "OK", "tags must be an array of arrays of strings"},
		{"event tags flat", evFrame("tags", `["e","x"]`), "OK", "tags must be an array of arrays of strings"},
		{"event tag empty", evFrame("tags", `[[]]`), "OK", "tags must not be empty arrays"},
		{"event tag number", evFrame("tags", `[["e",1]]`), "OK", "tags must be an array of arrays of strings"},
		{"event tag element object", evFrame("tags", `[["e",{"a":"b"}]]`), "OK", "tags must be an array of arrays of strings"},
		{"event tag element array", evFrame("tags", `[["e",["x"]]]`), "OK", "tags must be an array of arrays of strings"},
		{"event tag deep nesting", evFrame("tags", `[["e",`+strings.Repeat("[", 5000)+strings.Repeat("]", 5000)+`]]`), "OK", "nested too deeply"},
		{"event too many tags", evFrame("tags", "["+strings.Repeat(`["t"],`, 2000)+`["t"]]`), "OK", "too many tags"},
		{"event content number", evFrame("content", `5`), "OK", "content must be a string"},
		{"event content raw newline", evFrame("content", "\"a\nb\""), "OK", "malformed JSON"},
		{"event content bad escape", evFrame("content", `"\x"`), "OK", "malformed JSON"},
		{"event content lone surrogate", evFrame("content", `"\ud800"`), "OK", "unpaired surrogate"},
		{"event content reversed surrogates", evFrame("content", `"\udc00\ud800"`), "OK", "unpaired surrogate"},
		{"event unknown field deep", evFrame("x", strings.Repeat("[", 100)+strings.Repeat("]", 100)), "OK", "nested too deeply"},
		{"event unknown field bad literal", evFrame("x", `tru`), "OK", "malformed JSON"},
		{"auth bad", `["AUTH",` + evObj("sig", `"x"`) + `]`, "OK", "sig must be 128"},
		{"auth missing", `["AUTH"]`, "NOTICE", "AUTH needs an event"},

		// REQ and COUNT.
		{"req no sub id", `["REQ"]`, "NOTICE", "REQ needs a subscription id"},
		{"req sub id number", `["REQ",1,{}]`, "NOTICE", "subscription id must be a string"},
		{"req sub id empty", `["REQ","",{}]`, "CLOSED", "subscription id must be 1 to 64 characters"},
		{"req sub id 65", `["REQ","` + sub65 + `",{}]`, "CLOSED", "subscription id must be 1 to 64 characters"},
		{"count sub id 65", `["COUNT","` + sub65 + `",{}]`, "CLOSED", "subscription id must be 1 to 64 characters"},
		{"req no filter", `["REQ","s"]`, "CLOSED", "REQ needs at least one filter"},
		{"count no filter", `["COUNT","s"]`, "CLOSED", "COUNT needs at least one filter"},
		{"req too many filters", `["REQ","s"` + filters(11) + `]`, "CLOSED", "too many filters"},
		{"req filter not object", `["REQ","s",[]]`, "CLOSED", "filter must be a JSON object"},
		{"req filter null", `["REQ","s",null]`, "CLOSED", "filter must be a JSON object"},
		{"req truncated", `["REQ","s",{"ids":[`, "CLOSED", "malformed JSON"},
		{"req trailing comma", `["REQ","s",{},]`, "CLOSED", "filter must be a JSON object"},
		{"req too many ids", `["REQ","s",{"ids":` + ids(501) + `}]`, "CLOSED", `too many values in "ids"`},
		{"req too many kinds", `["REQ","s",{"kinds":[` + strings.Repeat("1,", 500) + `1]}]`, "CLOSED", `too many values in "kinds"`},
		{"req too many tag values", `["REQ","s",{"#p":[` + strings.Repeat(`"a",`, 500) + `"a"]}]`, "CLOSED", `too many values in "#p"`},
		{"req ids short", `["REQ","s",{"ids":["abcd"]}]`, "CLOSED", "ids must be 64 lowercase hex"},
		{"req authors upper", `["REQ","s",{"authors":["` + strings.ToUpper(hexPub) + `"]}]`, "CLOSED", "authors must be 64 lowercase hex"},
		{"req ids not array", `["REQ","s",{"ids":"` + hexID + `"}]`, "CLOSED", "ids must be an array"},
		{"req kinds string", `["REQ","s",{"kinds":["1"]}]`, "CLOSED", "kinds must be a non-negative integer"},
		{"req kinds too big", `["REQ","s",{"kinds":[70000]}]`, "CLOSED", "between 0 and 65535"},
		{"req kinds float", `["REQ","s",{"kinds":[1.5]}]`, "CLOSED", "kinds must be an integer"},
		{"req since negative", `["REQ","s",{"since":-5}]`, "CLOSED", "since must be a non-negative integer"},
		{"req until float", `["REQ","s",{"until":1e9}]`, "CLOSED", "until must be an integer"},
		{"req limit negative", `["REQ","s",{"limit":-1}]`, "CLOSED", "limit must be a non-negative integer"},
		{"req limit huge", `["REQ","s",{"limit":99999999999999999999}]`, "CLOSED", "limit is too large"},
		{"req limit null", `["REQ","s",{"limit":null}]`, "CLOSED", "limit must be a non-negative integer"},
		{"req search number", `["REQ","s",{"search":1}]`, "CLOSED", "search must be a string"},
		{"req tag filter multi-letter", `["REQ","s",{"#ee":["x"]}]`, "CLOSED", `unsupported tag filter "#ee"`},
		{"req tag filter digit", `["REQ","s",{"#1":["x"]}]`, "CLOSED", `unsupported tag filter "#1"`},
		{"req tag filter bare", `["REQ","s",{"#":["x"]}]`, "CLOSED", `unsupported tag filter "#"`},
		{"req tag values numbers", `["REQ","s",{"#e":[1]}]`, "CLOSED", `#e must be an array of strings`},
		{"req tag values nested", `["REQ","s",{"#e":[["x"]]}]`, "CLOSED", `#e must be an array of strings`},
		{"req duplicate key", `["REQ","s",{"kinds":[1],"kinds":[2]}]`, "CLOSED", `duplicate key "kinds"`},
		{"req duplicate tag key", `["REQ","s",{"#e":[],"#e":["x"]}]`, "CLOSED", `duplicate key "#e"`},
		{"req unknown key deep", `["REQ","s",{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]`, "CLOSED", "nested too deeply"},

		// CLOSE.
		{"close no sub id", `["CLOSE"]`, "NOTICE", "CLOSE needs a subscription id"},
		{"close extra", `["CLOSE","s","t"]`, "NOTICE", "CLOSE takes exactly one subscription id"},
		{"close sub id object", `["CLOSE",{}]`, "NOTICE", "subscription id must be a string"},
		{"close sub id too long", `["CLOSE","` + sub65 + `"]`, "NOTICE", "subscription id must be 1 to 64"},
	}
}

func TestParseClientMsg(t *testing.T) {
	lim := DefaultLimits()
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			msg, perr := parseClientMsg([]byte(tc.frame), &lim)
			if got := answerKind(perr); got != tc.want {
				t.Fatalf("answer %s, want %s (err %v)", got, tc.want, perr)
			}
			if perr == nil {
				if msg.verb == "" {
					t.Fatal("accepted with no verb")
				}
				return
			}
			if !strings.HasPrefix(perr.reason, "invalid: ") {
				t.Fatalf("reason %q lacks the invalid: prefix", perr.reason)
			}
			if !strings.Contains(perr.reason, tc.msg) {
				t.Fatalf("reason %q, want it to contain %q", perr.reason, tc.msg)
			}
			if perr.Error() != perr.reason {
				t.Fatalf("Error() = %q", perr.Error())
			}
		})
	}
}

func TestParseEventFields(t *testing.T) {
	frame := `["EVENT",{"content":"a\"b\\c\u00e9\ud83d\ude00","kind":7,"tags":[["e","` + hexID + `","wss://r"],["t","x"]],"created_at":123,"sig":"` + hexSig + `","pubkey":"` + hexPub + `","id":"` + hexID + `","extra":[1]}]`
	msg, perr := parseClientMsg([]byte(frame), nil)
	if perr != nil {
		t.Fatal(perr)
	}
	want := &nostr.Event{
		ID: hexID, PubKey: hexPub, CreatedAt: 123, Kind: 7,
		Tags:    nostr.Tags{{"e", hexID, "wss://r"}, {"t", "x"}},
		Content: "a\"b\\cé😀", Sig: hexSig,
	}
	if msg.verb != "EVENT" || !reflect.DeepEqual(msg.event, want) {
		t.Fatalf("got %q %+v\nwant %+v", msg.verb, msg.event, want)
	}
	// A tag's capacity is capped: appending to one must not touch the next.
	msg.event.Tags[0] = append(msg.event.Tags[0], "marker")
	if msg.event.Tags[1][0] != "t" {
		t.Fatal("tags share capacity")
	}
}

func TestParseFilterFields(t *testing.T) {
	frame := `["REQ","feed",{"ids":["` + hexID + `"],"authors":[],"kinds":[1,30023],"#e":["x","y"],"#P":[],"since":10,"until":20,"limit":0,"search":"nostr","unknown":[{"a":1}]},{"limit":7},{}]`
	msg, perr := parseClientMsg([]byte(frame), nil)
	if perr != nil {
		t.Fatal(perr)
	}
	if msg.verb != "REQ" || msg.subID != "feed" || len(msg.filters) != 3 {
		t.Fatalf("got %q %q %d filters", msg.verb, msg.subID, len(msg.filters))
	}
	since, until := nostr.Timestamp(10), nostr.Timestamp(20)
	want := nostr.Filter{
		IDs: []string{hexID}, Authors: []string{}, Kinds: []int{1, 30023},
		Tags:  nostr.TagMap{"e": {"x", "y"}, "P": {}},
		Since: &since, Until: &until, Limit: 0, LimitZero: true, Search: "nostr",
	}
	if f := msg.filters[0]; !reflect.DeepEqual(f, want) {
		t.Fatalf("filter 0 = %+v\nwant %+v", f, want)
	}
	// Empty lists must stay non-nil: they match nothing.
	if msg.filters[0].Authors == nil || msg.filters[0].Tags["P"] == nil {
		t.Fatal("empty list became nil")
	}
	if f := msg.filters[1]; f.Limit != 7 || f.LimitZero {
		t.Fatalf("filter 1 = %+v", f)
	}
	// Absent keys are nil: no constraint.
	if f := msg.filters[2]; f.IDs != nil || f.Authors != nil || f.Kinds != nil || f.Tags != nil || f.Since != nil || f.Until != nil || f.Limit != 0 || f.LimitZero {
		t.Fatalf("filter 2 = %+v", f)
	}
	ev := &nostr.Event{ID: hexID, PubKey: hexPub, Kind: 1, CreatedAt: 15, Tags: nostr.Tags{{"e", "x"}}}
	if msg.filters[0].Matches(ev) {
		t.Fatal("empty authors list matched")
	}
	if !msg.filters[2].Matches(ev) {
		t.Fatal("empty filter did not match")
	}
}

func TestParseSubIDKept(t *testing.T) {
	msg, perr := parseClientMsg([]byte(`["CLOSE","a\"b\u00e9"]`), nil)
	if perr != nil || msg.verb != "CLOSE" || msg.subID != "a\"bé" {
		t.Fatalf("got %+v %v", msg, perr)
	}
	// An error after a usable sub id carries it, for the CLOSED.
	_, perr = parseClientMsg([]byte(`["COUNT","q\"",{"kinds":["x"]}]`), nil)
	if perr == nil || perr.subID != "q\"" {
		t.Fatalf("got %+v", perr)
	}
}

func TestParseLimitsUnbounded(t *testing.T) {
	// Zero limits mean no bound, except the NIP-01 sub id length.
	var lim Limits
	frame := `["REQ","` + strings.Repeat("s", 64) + `"` + strings.Repeat(`,{"kinds":[1,2,3]}`, 50) + `]`
	if _, perr := parseClientMsg([]byte(frame), &lim); perr != nil {
		t.Fatal(perr)
	}
	if _, perr := parseClientMsg([]byte(`["REQ","`+strings.Repeat("s", 65)+`",{}]`), &lim); perr == nil {
		t.Fatal("65-character sub id accepted")
	}
}

func TestParseEchoedIDIsHex(t *testing.T) {
	// okFrame writes the id unescaped: it must never be anything but hex.
	for _, id := range []string{`"` + strings.Repeat("a", 63) + `\""`, `"<script>"`, `"` + strings.Repeat("é", 32) + `"`} {
		_, perr := parseClientMsg([]byte(evFrame("id", id)), nil)
		if perr == nil || perr.eventID != "" {
			t.Fatalf("id %s: got %+v", id, perr)
		}
	}
}

func TestCanonicalEvent(t *testing.T) {
	ev := &nostr.Event{
		ID: hexID, PubKey: hexPub, CreatedAt: 1700000000, Kind: 1,
		Tags:    nostr.Tags{{"e", hexID}, {"x", "<&>\u2028\x01\x1f\x7f\"\\"}},
		Content: "line\nbreak\ttab\r\b\f\x00 \"quoted\" \\ é 😀 </script>",
		Sig:     hexSig,
	}
	raw := canonicalEvent(ev)
	if !json.Valid(raw) {
		t.Fatalf("invalid JSON: %s", raw)
	}
	wantPrefix := `{"id":"` + hexID + `","pubkey":"` + hexPub + `","created_at":1700000000,"kind":1,"tags":[["e","` + hexID + `"],`
	if !strings.HasPrefix(string(raw), wantPrefix) || !strings.HasSuffix(string(raw), `,"sig":"`+hexSig+`"}`) {
		t.Fatalf("unexpected layout: %s", raw)
	}
	if !strings.Contains(string(raw), `"content":"line\nbreak\ttab\r\b\f\u0000 \"quoted\" \\ é 😀 </script>"`) {
		t.Fatalf("content escaped unexpectedly: %s", raw)
	}
	// Our parser and go-nostr's both read it back to the same event.
	msg, perr := parseClientMsg(append([]byte(`["EVENT",`), append(raw, ']')...), nil)
	if perr != nil || !reflect.DeepEqual(msg.event, ev) {
		t.Fatalf("parse back: %v\n%+v", perr, msg.event)
	}
	var back nostr.Event
	if err := json.Unmarshal(raw, &back); err != nil || !reflect.DeepEqual(&back, ev) {
		t.Fatalf("go-nostr read back %v: %+v", err, back)
	}
	// The string escaping is the one NIP-01 hashes: the canonical content is
	// byte-for-byte what go-nostr serializes for the id.
	ser := string(ev.Serialize())
	if !strings.Contains(ser, string(appendJSONString(nil, ev.Content))) {
		t.Fatal("content escaping differs from the NIP-01 serialization")
	}
	// Invalid UTF-8 (never produced by the parser) still yields valid JSON.
	bad := *ev
	bad.Content = "a\xffb"
	if raw := canonicalEvent(&bad); !json.Valid(raw) || !strings.Contains(string(raw), `a\ufffdb`) {
		t.Fatalf("invalid UTF-8: %s", raw)
	}
}

func FuzzParseClientMsg(f *testing.F) {
	for _, tc := range parseCases() {
		if len(tc.frame) < 4096 {
			f.Add([]byte(tc.frame))
		}
	}
	f.Add([]byte(`["EVENT",{"id":"` + hexID + `","pubkey":"` + hexPub + `","created_at":1,"kind":1,"tags":[["a","\u0001\"\\"]],"content":"\ud83d\ude00\u2028","sig":"` + hexSig + `"}]`))
	f.Add([]byte(`["REQ","x",{"#a":["\u0000"],"limit":5,"since":0}]`))
	lim := DefaultLimits()
	lim.MaxMessageBytes = 64 * 1024
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, perr := parseClientMsg(data, &lim)
		if perr != nil {
			if !strings.HasPrefix(perr.reason, "invalid: ") {
				t.Fatalf("reason %q", perr.reason)
			}
			if perr.eventID != "" && !isHex(perr.eventID, 64) {
				t.Fatalf("echoed id %q", perr.eventID)
			}
			if perr.eventID != "" && perr.subID != "" {
				t.Fatal("both eventID and subID set")
			}
			return
		}
		// Differential: whatever we accept, encoding/json agrees is JSON.
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		switch msg.verb {
		case "EVENT", "AUTH":
			ev := msg.event
			if !isLowerHex(ev.ID, 64) || !isLowerHex(ev.PubKey, 64) || !isLowerHex(ev.Sig, 128) || ev.Kind < 0 || ev.Kind > 65535 || ev.CreatedAt < 0 {
				t.Fatalf("accepted bad event %+v", ev)
			}
			raw := canonicalEvent(ev)
			if !json.Valid(raw) {
				t.Fatalf("canonical JSON invalid: %s", raw)
			}
			// Our escaping is the one the id hashes.
			if got, want := nip01Serialize(ev), ev.Serialize(); string(got) != string(want) {
				t.Fatalf("serialization differs:\n%s\n%s", got, want)
			}
			back, perr := parseClientMsg(append([]byte(`["EVENT",`), append(raw, ']')...), &lim)
			if perr != nil && !strings.Contains(perr.reason, "message too large") {
				t.Fatalf("canonical form rejected: %v\n%s", perr, raw)
			}
			if perr == nil && !reflect.DeepEqual(back.event, ev) {
				t.Fatalf("round trip changed the event:\n%+v\n%+v", ev, back.event)
			}
		case "REQ", "COUNT":
			if len(msg.filters) == 0 || len(msg.filters) > lim.MaxFilters {
				t.Fatalf("%d filters", len(msg.filters))
			}
			for _, fl := range msg.filters {
				for _, id := range append(append([]string{}, fl.IDs...), fl.Authors...) {
					if !isLowerHex(id, 64) {
						t.Fatalf("accepted id %q", id)
					}
				}
				for name, vals := range fl.Tags {
					if len(name) != 1 || vals == nil || len(vals) > lim.MaxFilterValues {
						t.Fatalf("tag filter %q: %v", name, vals)
					}
				}
				if fl.Limit < 0 || (fl.LimitZero && fl.Limit != 0) {
					t.Fatalf("limit %d zero %v", fl.Limit, fl.LimitZero)
				}
			}
			fallthrough
		case "CLOSE":
			if n := len([]rune(msg.subID)); n == 0 || n > lim.MaxSubIDLength {
				t.Fatalf("sub id %q", msg.subID)
			}
		default:
			t.Fatalf("verb %q", msg.verb)
		}
	})
}

// nip01Serialize is go-nostr's Serialize written with appendJSONString.
func nip01Serialize(ev *nostr.Event) []byte {
	b := []byte(`[0,`)
	b = appendJSONString(b, ev.PubKey)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(ev.CreatedAt), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(ev.Kind), 10)
	b = append(b, `,[`...)
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
	b = append(b, `],`...)
	b = appendJSONString(b, ev.Content)
	return append(b, ']')
}

// benchEventFrame is a typical kind-1 note with a few tags.
func benchEventFrame() []byte {
	ev := nostr.Event{
		PubKey: hexPub, CreatedAt: 1700000000, Kind: 1,
		Tags: nostr.Tags{
			{"e", hexID, "wss://relay.example.com", "root"},
			{"p", hexPub},
			{"t", "nostr"},
		},
		Content: strings.Repeat("The quick brown fox jumps over the lazy dog. ", 6) + "\"quoted\"\nnew line",
		ID:      hexID, Sig: hexSig,
	}
	return append(append([]byte(`["EVENT",`), canonicalEvent(&ev)...), ']')
}

func BenchmarkParseEvent(b *testing.B) {
	frame := benchEventFrame()
	lim := DefaultLimits()
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, perr := parseClientMsg(frame, &lim); perr != nil {
			b.Fatal(perr)
		}
	}
}

// BenchmarkParseEventEncodingJSON is the reference: go-nostr's decoder
// reached through encoding/json, with none of the strictness.
func BenchmarkParseEventEncodingJSON(b *testing.B) {
	frame := benchEventFrame()
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		var raw []json.RawMessage
		if err := json.Unmarshal(frame, &raw); err != nil {
			b.Fatal(err)
		}
		var ev nostr.Event
		if err := json.Unmarshal(raw[1], &ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseReq(b *testing.B) {
	frame := []byte(`["REQ","feed",{"authors":["` + hexPub + `","` + hexID + `"],"kinds":[1,6,7],"since":1700000000,"limit":100},{"#p":["` + hexPub + `"],"kinds":[1]}]`)
	lim := DefaultLimits()
	b.ReportAllocs()
	for b.Loop() {
		if _, perr := parseClientMsg(frame, &lim); perr != nil {
			b.Fatal(perr)
		}
	}
}

func BenchmarkCanonicalEvent(b *testing.B) {
	msg, _ := parseClientMsg(benchEventFrame(), nil)
	b.ReportAllocs()
	for b.Loop() {
		canonicalEvent(msg.event)
	}
}

// A frame of N bytes must parse in time and memory proportional to N, so a
// hostile frame of many tiny values costs no more per byte than a real one.
func TestParseAllocationBounded(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxEventTags = math.MaxInt32
	frames := map[string][]byte{
		"many tags":          []byte(evFrame("tags", "["+strings.Repeat(`["a"],`, 40000)+`["a"]]`)),
		"many tag elements":  []byte(evFrame("tags", `[["a"`+strings.Repeat(`,""`, 60000)+`]]`)),
		"many escapes":       []byte(evFrame("tags", `[["a"`+strings.Repeat(`,"\n"`, 40000)+`]]`)),
		"many unknown":       []byte(evFrame("x", "["+strings.Repeat(`[],`, 60000)+`[]]`)),
		"many filters keys":  []byte(`["REQ","s",{` + strings.Repeat(`"x":0,`, 40000) + `"y":1}]`),
		"long escaped close": []byte(`["CLOSE","` + strings.Repeat(`\n`, 100000) + `"]`),
	}
	for name, frame := range frames {
		var before, after runtime.MemStats
		const runs = 3
		runtime.ReadMemStats(&before)
		for range runs {
			parseClientMsg(frame, &lim)
		}
		runtime.ReadMemStats(&after)
		allocs := (after.TotalAlloc - before.TotalAlloc) / runs
		// Worst case is a tag ["a"] of 6 bytes: a 24-byte tag and a 16-byte
		// string header, plus the copy of the frame.
		if ratio := float64(allocs) / float64(len(frame)); ratio > 9 {
			t.Errorf("%s: %d bytes allocated for a %d-byte frame (%.1fx)", name, allocs, len(frame), ratio)
		} else {
			t.Logf("%s: %.1fx", name, ratio)
		}
	}
}
