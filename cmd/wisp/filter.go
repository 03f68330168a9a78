package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/nbd-wtf/go-nostr"
)

// The commands that take a filter (scan, export, delete, sync) read it
// strictly: a relay may ignore keys it does not know (NIP-01), but an
// operator who types {"author":[…]} for "authors" and gets every event, or
// deletes them, has been misled. So an unknown key, a duplicate key or a
// malformed value is an error naming the key, and broken JSON says where.
// What is accepted means what it means in a REQ (relay/filterjson.go):
// absent keys constrain nothing, an empty list matches nothing, "limit":0
// asks for no stored events.

// filterKeys are the keys of a NIP-01 filter besides "#<letter>".
var filterKeys = []string{"ids", "authors", "kinds", "since", "until", "limit", "search"}

// parseFilters reads one filter object or a JSON array of them.
func parseFilters(text string) ([]nostr.Filter, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, errors.New("no filter given")
	}
	p := &filterParser{text: text, dec: json.NewDecoder(strings.NewReader(text))}
	p.dec.UseNumber()
	// The syntax is checked first, over the whole text: Unmarshal's syntax
	// errors say exactly where (a Decoder's are off by a few characters).
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			if se.Offset >= int64(len(text)) && strings.Contains(se.Error(), "end of JSON") {
				return nil, fmt.Errorf("filter: %w", p.at(len(text), "the JSON ends too early (a closing } or ] or a quote missing?)"))
			}
			return nil, fmt.Errorf("filter: %w", p.at(int(se.Offset)-1, strings.TrimPrefix(se.Error(), "json: ")))
		}
		return nil, fmt.Errorf("filter: %w", err)
	}
	out, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	return out, nil
}

type filterParser struct {
	text string
	dec  *json.Decoder
}

func (p *filterParser) parse() ([]nostr.Filter, error) {
	tok, err := p.token()
	if err != nil {
		return nil, err
	}
	var out []nostr.Filter
	switch tok {
	case json.Delim('{'):
		f, err := p.object("")
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	case json.Delim('['):
		for i := 0; p.dec.More(); i++ {
			tok, err := p.token()
			if err != nil {
				return nil, err
			}
			if tok != json.Delim('{') {
				return nil, p.errorf("filter %d: want an object, got %s", i, describe(tok))
			}
			f, err := p.object(fmt.Sprintf("filter %d: ", i))
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		}
		if _, err := p.token(); err != nil { // the closing ]
			return nil, err
		}
		if len(out) == 0 {
			return nil, errors.New("empty array: give at least one filter")
		}
	default:
		return nil, p.errorf("want a JSON object (or an array of them), got %s", describe(tok))
	}
	if _, err := p.dec.Token(); err != io.EOF {
		if err != nil {
			return nil, p.syntax(err)
		}
		return nil, p.errorf("unexpected text after the filter")
	}
	return out, nil
}

// object reads the keys of a filter whose { was read; in prefixes errors.
func (p *filterParser) object(in string) (nostr.Filter, error) {
	var f nostr.Filter
	seen := map[string]bool{}
	for p.dec.More() {
		tok, err := p.token()
		if err != nil {
			return f, err
		}
		key, _ := tok.(string) // object keys are always strings
		if seen[key] {
			return f, p.errorf("%sduplicate key %q", in, key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := p.dec.Decode(&raw); err != nil {
			return f, p.syntax(err)
		}
		if err := setFilterKey(&f, key, raw); err != nil {
			return f, fmt.Errorf("%s%w", in, err)
		}
	}
	_, err := p.token() // the closing }
	return f, err
}

// setFilterKey sets one key of f from its JSON value.
func setFilterKey(f *nostr.Filter, key string, raw json.RawMessage) error {
	switch key {
	case "ids", "authors":
		vals, err := stringList(key, raw)
		if err != nil {
			return err
		}
		for i, v := range vals {
			if !isLowerHex64(v) {
				return fmt.Errorf("%q[%d]: %q is not 64 lowercase hex characters", key, i, v)
			}
		}
		if key == "ids" {
			f.IDs = vals
		} else {
			f.Authors = vals
		}
	case "kinds":
		var nums []json.RawMessage
		if err := decodeList(raw, &nums); err != nil {
			return fmt.Errorf("%q: want an array of kinds (integers from 0 to 65535), got %s", key, clip(raw))
		}
		f.Kinds = make([]int, 0, len(nums))
		for i, n := range nums {
			k, err := strconv.ParseInt(string(n), 10, 64)
			if err != nil || n[0] == '-' || k > 65535 {
				return fmt.Errorf("%q[%d]: %s is not a kind (an integer from 0 to 65535)", key, i, clip(n))
			}
			f.Kinds = append(f.Kinds, int(k))
		}
	case "since", "until", "limit":
		// A JSON integer is digits alone: ParseInt refuses 1.5, 1e3, "5".
		v, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || raw[0] == '-' {
			what := "unix seconds"
			if key == "limit" {
				what = "a number of events"
			}
			return fmt.Errorf("%q: want a non-negative integer (%s), got %s", key, what, clip(raw))
		}
		switch key {
		case "since":
			ts := nostr.Timestamp(v)
			f.Since = &ts
		case "until":
			ts := nostr.Timestamp(v)
			f.Until = &ts
		default:
			f.Limit = int(min(v, math.MaxInt))
			f.LimitZero = v == 0
		}
	case "search":
		if err := json.Unmarshal(raw, &f.Search); err != nil || string(raw) == "null" {
			return fmt.Errorf("%q: want a string, got %s", key, clip(raw))
		}
	default:
		if len(key) == 2 && key[0] == '#' && isASCIILetter(key[1]) {
			vals, err := stringList(key, raw)
			if err != nil {
				return err
			}
			if f.Tags == nil {
				f.Tags = nostr.TagMap{}
			}
			f.Tags[key[1:]] = vals
			return nil
		}
		return unknownKey(key)
	}
	return nil
}

// unknownKey explains a key that is not a filter's, with the likely one.
func unknownKey(key string) error {
	if strings.HasPrefix(key, "#") {
		return fmt.Errorf("unknown key %q: tag filters are # and one letter (a-z, A-Z), such as \"#e\" or \"#t\"", key)
	}
	for _, k := range filterKeys {
		if strings.EqualFold(key, k) || strings.EqualFold(key+"s", k) || strings.EqualFold(key, k+"s") {
			return fmt.Errorf("unknown key %q (did you mean %q?)", key, k)
		}
	}
	if len(key) == 1 && isASCIILetter(key[0]) {
		return fmt.Errorf("unknown key %q (did you mean %q, the tag filter?)", key, "#"+key)
	}
	return fmt.Errorf("unknown key %q: a filter has %s and \"#<letter>\"", key, quoteAll(filterKeys))
}

// stringList decodes an array of strings, non-nil even when empty (an
// empty list matches nothing).
func stringList(key string, raw json.RawMessage) ([]string, error) {
	var vals []string
	if err := decodeList(raw, &vals); err != nil {
		return nil, fmt.Errorf("%q: want an array of strings, got %s", key, clip(raw))
	}
	if vals == nil {
		vals = []string{}
	}
	return vals, nil
}

// decodeList decodes a JSON array into dst, refusing null (which a REQ
// refuses too) and anything but an array.
func decodeList(raw json.RawMessage, dst any) error {
	if len(raw) == 0 || raw[0] != '[' {
		return errors.New("not an array")
	}
	return json.Unmarshal(raw, dst)
}

// token reads the next JSON token, turning a syntax error into one that
// says where.
func (p *filterParser) token() (json.Token, error) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.syntax(err)
	}
	return tok, nil
}

// syntax rewrites a decoder error with the place it happened.
func (p *filterParser) syntax(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return p.at(int(se.Offset), strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return p.at(len(p.text), "the JSON ends too early (a closing } or ] or a quote missing?)")
	}
	return err
}

// errorf is an error at the decoder's current position.
func (p *filterParser) errorf(format string, args ...any) error {
	return p.at(int(p.dec.InputOffset()), fmt.Sprintf(format, args...))
}

// at says what went wrong at byte offset off of the text (counted from
// 0), showing the text before it.
func (p *filterParser) at(off int, msg string) error {
	off = max(0, min(off, len(p.text)))
	shown := p.text[:off]
	if len(shown) > 40 {
		shown = "…" + shown[len(shown)-40:]
	}
	if off == len(p.text) {
		return fmt.Errorf("%s at the end, after %s", msg, strconv.Quote(shown))
	}
	return fmt.Errorf("%s at character %d, after %s", msg, off+1, strconv.Quote(shown))
}

// describe names a JSON token for an error.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return strconv.Quote(v.String())
	case string:
		return "the string " + strconv.Quote(v)
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}

// clip shows a JSON value in an error, cut when long.
func clip(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

func quoteAll(keys []string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = strconv.Quote(k)
	}
	return strings.Join(q, ", ")
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isLowerHex64(v string) bool {
	if len(v) != 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
