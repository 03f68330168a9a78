package relay

import (
	"math"
	"strconv"

	"github.com/nbd-wtf/go-nostr"
)

// Bits for the filter fields, to catch duplicates.
const (
	flIDs = 1 << iota
	flAuthors
	flKinds
	flSince
	flUntil
	flLimit
	flSearch
)

// parseFilter parses one filter. Absent keys stay nil (no constraint);
// present but empty lists stay non-nil (match nothing), as go-nostr's
// Filter.Matches expects. Keys "#x" with one ASCII letter are tag filters;
// other keys starting with '#' are refused, since the relay indexes only
// single-letter tags and could not honour them; other unknown keys are ignored.
func (s *jsonScanner) parseFilter(lim *Limits) (nostr.Filter, jsonFail) {
	var fl nostr.Filter
	if !s.consume('{') {
		return fl, s.typeFail("filter must be a JSON object")
	}
	s.skipWS()
	if s.consume('}') {
		return fl, jsonFail{}
	}
	var seen int
	for {
		s.skipWS()
		if s.peek() != '"' {
			return fl, s.syntax()
		}
		key, f := s.readKey()
		if f.msg != "" {
			return fl, f
		}
		s.skipWS()
		if !s.consume(':') {
			return fl, s.syntax()
		}
		s.skipWS()
		bit := 0
		switch string(key) {
		case "ids":
			bit = flIDs
			fl.IDs, f = s.readHexList("ids", lim)
		case "authors":
			bit = flAuthors
			fl.Authors, f = s.readHexList("authors", lim)
		case "kinds":
			bit = flKinds
			fl.Kinds, f = s.readKinds(lim)
		case "since", "until":
			bit = flSince
			name := "since"
			if string(key) == "until" {
				bit, name = flUntil, "until"
			}
			var v int64
			if v, f = s.readUint(name); f.msg == "" {
				ts := nostr.Timestamp(v)
				if bit == flSince {
					fl.Since = &ts
				} else {
					fl.Until = &ts
				}
			}
		case "limit":
			bit = flLimit
			var v int64
			if v, f = s.readUint("limit"); f.msg == "" {
				fl.Limit = int(min(v, math.MaxInt))
				fl.LimitZero = v == 0
			}
		case "search":
			bit = flSearch
			if s.peek() != '"' {
				f = s.typeFail("search must be a string")
			} else {
				fl.Search, f = s.readString()
			}
		default:
			if len(key) == 0 || key[0] != '#' {
				f = s.skipValue(maxSkipDepth)
				break
			}
			if len(key) != 2 || !isASCIILetter(key[1]) {
				return fl, jsonFail{msg: "unsupported tag filter " + strconv.Quote(string(key)) + " (only #a-z and #A-Z)"}
			}
			name := string(key[1:])
			if _, dup := fl.Tags[name]; dup {
				return fl, jsonFail{msg: "duplicate key " + strconv.Quote(string(key))}
			}
			var vals []string
			if vals, f = s.readStringList(string(key), lim); f.msg == "" {
				if fl.Tags == nil {
					fl.Tags = nostr.TagMap{}
				}
				fl.Tags[name] = vals
			}
		}
		if f.msg != "" {
			return fl, f
		}
		if seen&bit != 0 {
			return fl, jsonFail{msg: "duplicate key " + strconv.Quote(string(key))}
		}
		seen |= bit
		s.skipWS()
		if s.consume('}') {
			return fl, jsonFail{}
		}
		if !s.consume(',') {
			return fl, s.syntax()
		}
	}
}

// readList reads a JSON array of at most lim.MaxFilterValues elements. A
// first pass counts them (and checks the syntax), so that the list is
// allocated once, at its size; then elem is called at the start of each.
func (s *jsonScanner) readList(name string, lim *Limits, alloc func(n int), elem func() jsonFail) jsonFail {
	if !s.consume('[') {
		return s.typeFail(name + " must be an array")
	}
	start := s.pos
	n := 0
	s.skipWS()
	if !s.consume(']') {
		for {
			if n++; lim.MaxFilterValues > 0 && n > lim.MaxFilterValues {
				return jsonFail{msg: "too many values in " + strconv.Quote(name) + " (at most " + strconv.Itoa(lim.MaxFilterValues) + ")"}
			}
			s.skipWS()
			if f := s.skipValue(maxSkipDepth); f.msg != "" {
				return f
			}
			s.skipWS()
			if s.consume(']') {
				break
			}
			if !s.consume(',') {
				return s.syntax()
			}
		}
	}
	alloc(n)
	s.pos = start
	for range n {
		s.skipWS()
		s.consume(',')
		s.skipWS()
		if f := elem(); f.msg != "" {
			return f
		}
	}
	s.skipWS()
	s.consume(']')
	return jsonFail{}
}

func (s *jsonScanner) readHexList(name string, lim *Limits) ([]string, jsonFail) {
	var list []string
	f := s.readList(name, lim, func(n int) { list = make([]string, 0, n) }, func() jsonFail {
		v, f := s.readHex(name, 64)
		if f.msg != "" {
			return f
		}
		list = append(list, v)
		return jsonFail{}
	})
	return list, f
}

func (s *jsonScanner) readStringList(name string, lim *Limits) ([]string, jsonFail) {
	var list []string
	f := s.readList(name, lim, func(n int) { list = make([]string, 0, n) }, func() jsonFail {
		if s.peek() != '"' {
			return s.typeFail(name + " must be an array of strings")
		}
		v, f := s.readString()
		if f.msg != "" {
			return f
		}
		list = append(list, v)
		return jsonFail{}
	})
	return list, f
}

func (s *jsonScanner) readKinds(lim *Limits) ([]int, jsonFail) {
	var list []int
	f := s.readList("kinds", lim, func(n int) { list = make([]int, 0, n) }, func() jsonFail {
		v, f := s.readUint("kinds")
		if f.msg == "" && v > 65535 {
			f = jsonFail{msg: "kinds must be integers between 0 and 65535"}
		}
		if f.msg != "" {
			return f
		}
		list = append(list, int(v))
		return jsonFail{}
	})
	return list, f
}
