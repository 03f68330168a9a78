package relay

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

// clientMsg is one parsed client frame.
type clientMsg struct {
	verb    string         // "EVENT", "REQ", "CLOSE", "COUNT", "AUTH"
	event   *nostr.Event   // EVENT (and AUTH)
	subID   string         // REQ, CLOSE, COUNT
	filters []nostr.Filter // REQ, COUNT
}

// parseError says how to answer a frame that could not be parsed: as an OK
// false (eventID set), a CLOSED (subID set) or a NOTICE (neither). reason
// carries a NIP-01 prefix.
//
// eventID is only set to 64 hex digits and subID only to an id that passed the
// length check, so both are safe and meaningful to echo.
type parseError struct{ eventID, subID, reason string }

func (e *parseError) Error() string { return e.reason }

const (
	// maxSkipDepth bounds the nesting of values the parser skips (unknown
	// fields, or a mistyped field skipped to find the event id). It keeps the
	// recursion shallow whatever the client sends.
	maxSkipDepth = 16
	// maxVerbEcho is how much of an unknown verb is quoted back.
	maxVerbEcho = 32
)

// parseClientMsg parses one client frame. It is strict about types (hex,
// integers, strings) and runs in time linear in len(data); on EVENT and AUTH
// every string of the event shares one copy of the frame. It never keeps a
// reference to data.
func parseClientMsg(data []byte, lim *Limits) (clientMsg, *parseError) {
	if lim == nil {
		d := DefaultLimits()
		lim = &d
	}
	if lim.MaxMessageBytes > 0 && len(data) > lim.MaxMessageBytes {
		return clientMsg{}, notice("message too large")
	}
	// Checked once up front, so the scanner can treat every byte >= 0x80
	// inside a string as part of a valid sequence.
	if !utf8.Valid(data) {
		return clientMsg{}, notice("message is not valid UTF-8")
	}
	s := jsonScanner{data: data}
	s.skipWS()
	if !s.consume('[') {
		return clientMsg{}, notice("message must be a JSON array")
	}
	s.skipWS()
	switch c := s.peek(); {
	case c == ']':
		return clientMsg{}, notice("empty message")
	case c != '"':
		return clientMsg{}, notice("message type must be a string")
	}
	key, f := s.readKey()
	if f.msg != "" {
		return clientMsg{}, notice(f.msg)
	}
	switch string(key) {
	case "EVENT":
		return s.parseEventMsg("EVENT", lim)
	case "AUTH":
		return s.parseEventMsg("AUTH", lim)
	case "REQ":
		return s.parseReqMsg("REQ", lim)
	case "COUNT":
		return s.parseReqMsg("COUNT", lim)
	case "CLOSE":
		return s.parseCloseMsg(lim)
	}
	verb := string(key)
	if len(verb) > maxVerbEcho {
		n := maxVerbEcho
		for n > 0 && !utf8.RuneStart(verb[n]) {
			n--
		}
		verb = verb[:n] + "…"
	}
	return clientMsg{}, notice("unknown message type " + strconv.Quote(verb))
}

func notice(msg string) *parseError { return &parseError{reason: wisp.Reason(wisp.PrefixInvalid, msg)} }

// parseEventMsg parses the rest of ["EVENT", {event}] or ["AUTH", {event}].
func (s *jsonScanner) parseEventMsg(verb string, lim *Limits) (clientMsg, *parseError) {
	s.skipWS()
	if !s.consume(',') {
		if s.peek() == ']' {
			return clientMsg{}, notice(verb + " needs an event")
		}
		return clientMsg{}, notice(s.syntax().msg)
	}
	// From here every string of the event is a substring of this one copy:
	// one allocation for all of them.
	s.src = string(s.data)
	s.skipWS()
	ev, id, f := s.parseEvent(lim)
	if f.msg == "" {
		f = s.finish(verb + " takes exactly one event")
	}
	if f.msg != "" {
		return clientMsg{}, &parseError{eventID: id, reason: wisp.Reason(wisp.PrefixInvalid, f.msg)}
	}
	return clientMsg{verb: verb, event: ev}, nil
}

// parseReqMsg parses the rest of ["REQ", subID, filter...] (and COUNT).
func (s *jsonScanner) parseReqMsg(verb string, lim *Limits) (clientMsg, *parseError) {
	subID, perr := s.parseSubID(verb, lim)
	if perr != nil {
		return clientMsg{}, perr
	}
	closed := func(msg string) (clientMsg, *parseError) {
		return clientMsg{}, &parseError{subID: subID, reason: wisp.Reason(wisp.PrefixInvalid, msg)}
	}
	var filters []nostr.Filter
	for {
		s.skipWS()
		if s.consume(']') {
			break
		}
		if !s.consume(',') {
			return closed(s.syntax().msg)
		}
		if lim.MaxFilters > 0 && len(filters) >= lim.MaxFilters {
			return closed("too many filters")
		}
		s.skipWS()
		fl, f := s.parseFilter(lim)
		if f.msg != "" {
			return closed(f.msg)
		}
		filters = append(filters, fl)
	}
	if f := s.trailing(); f.msg != "" {
		return closed(f.msg)
	}
	if len(filters) == 0 {
		return closed(verb + " needs at least one filter")
	}
	return clientMsg{verb: verb, subID: subID, filters: filters}, nil
}

// parseCloseMsg parses the rest of ["CLOSE", subID]. Its errors are NOTICEs:
// the client is closing the subscription anyway.
func (s *jsonScanner) parseCloseMsg(lim *Limits) (clientMsg, *parseError) {
	subID, perr := s.parseSubID("CLOSE", lim)
	if perr != nil {
		return clientMsg{}, perr
	}
	if f := s.finish("CLOSE takes exactly one subscription id"); f.msg != "" {
		return clientMsg{}, notice(f.msg)
	}
	return clientMsg{verb: "CLOSE", subID: subID}, nil
}

// parseSubID reads ", subID". A sub id that is not a string of the right
// length cannot be used in a CLOSED, so its errors are NOTICEs.
func (s *jsonScanner) parseSubID(verb string, lim *Limits) (string, *parseError) {
	s.skipWS()
	if !s.consume(',') {
		if s.peek() == ']' {
			return "", notice(verb + " needs a subscription id")
		}
		return "", notice(s.syntax().msg)
	}
	s.skipWS()
	if s.peek() != '"' {
		return "", notice("subscription id must be a string")
	}
	id, f := s.readString()
	if f.msg != "" {
		return "", notice(f.msg)
	}
	maxLen := lim.MaxSubIDLength
	if maxLen <= 0 {
		maxLen = 64 // NIP-01
	}
	if n := utf8.RuneCountInString(id); n == 0 || n > maxLen {
		return "", notice("subscription id must be 1 to " + strconv.Itoa(maxLen) + " characters")
	}
	return id, nil
}

// finish expects the closing ']' of the message and nothing after it;
// arity names the mistake if more elements follow.
func (s *jsonScanner) finish(arity string) jsonFail {
	s.skipWS()
	if s.consume(']') {
		return s.trailing()
	}
	if s.peek() == ',' {
		return jsonFail{msg: arity}
	}
	return s.syntax()
}

// trailing accepts only whitespace after the message.
func (s *jsonScanner) trailing() jsonFail {
	s.skipWS()
	if s.pos != len(s.data) {
		return s.syntax()
	}
	return jsonFail{}
}

// Bits for the event fields, to catch missing and duplicate fields.
const (
	evID = 1 << iota
	evPubKey
	evCreatedAt
	evKind
	evTags
	evContent
	evSig
	evAll = evID | evPubKey | evCreatedAt | evKind | evTags | evContent | evSig
)

// parseEvent parses an event object. A wrongly typed field does not stop it:
// it notes the first such problem, skips the value and reads on, so that it
// can still find the id and the client gets an OK rather than a NOTICE. Only
// malformed JSON stops it. echoID is the id when it is 64 hex digits.
func (s *jsonScanner) parseEvent(lim *Limits) (ev *nostr.Event, echoID string, f jsonFail) {
	if !s.consume('{') {
		return nil, "", s.typeFail("event must be a JSON object")
	}
	ev = &nostr.Event{}
	var seen int
	var first string // first type problem
	s.skipWS()
	if s.consume('}') {
		return nil, "", jsonFail{msg: "missing field \"id\""}
	}
	for {
		s.skipWS()
		if s.peek() != '"' {
			return nil, echoID, s.syntax()
		}
		key, f := s.readKey()
		if f.msg != "" {
			return nil, echoID, f
		}
		s.skipWS()
		if !s.consume(':') {
			return nil, echoID, s.syntax()
		}
		s.skipWS()
		start := s.pos
		bit := 0
		switch string(key) {
		case "id":
			bit = evID
			// readHex returns a wrong string too: an id in upper case
			// still earns an OK.
			ev.ID, f = s.readHex("id", 64)
			if echoID == "" && isHex(ev.ID, 64) {
				echoID = ev.ID
			}
		case "pubkey":
			bit = evPubKey
			ev.PubKey, f = s.readHex("pubkey", 64)
		case "sig":
			bit = evSig
			ev.Sig, f = s.readHex("sig", 128)
		case "created_at":
			bit = evCreatedAt
			var v int64
			v, f = s.readUint("created_at")
			ev.CreatedAt = nostr.Timestamp(v)
		case "kind":
			bit = evKind
			var v int64
			v, f = s.readUint("kind")
			if f.msg == "" && v > 65535 {
				f = jsonFail{msg: "kind must be an integer between 0 and 65535"}
			}
			ev.Kind = int(v)
		case "tags":
			bit = evTags
			ev.Tags, f = s.readTags(lim)
		case "content":
			bit = evContent
			if s.peek() != '"' {
				f = s.typeFail("content must be a string")
			} else {
				ev.Content, f = s.readString()
			}
		default:
			// Unknown fields are ignored (some clients add their own).
			f = s.skipValue(maxSkipDepth)
		}
		if f.syntax {
			return nil, echoID, f
		}
		if seen&bit != 0 && first == "" {
			first = "duplicate field " + strconv.Quote(string(key))
		}
		seen |= bit
		if f.msg != "" {
			if first == "" {
				first = f.msg
			}
			s.pos = start
			if f = s.skipValue(maxSkipDepth); f.msg != "" {
				return nil, echoID, f
			}
		}
		s.skipWS()
		if s.consume('}') {
			break
		}
		if !s.consume(',') {
			return nil, echoID, s.syntax()
		}
	}
	if first == "" && seen != evAll {
		names := [...]string{"id", "pubkey", "created_at", "kind", "tags", "content", "sig"}
		for i, name := range names {
			if seen&(1<<i) == 0 {
				first = "missing field " + strconv.Quote(name)
				break
			}
		}
	}
	if first != "" {
		return nil, echoID, jsonFail{msg: first}
	}
	return ev, echoID, jsonFail{}
}

// readTags reads an array of non-empty arrays of strings. A first pass checks
// the shape and counts, so that the second allocates exactly once for all
// elements and once for the tags: a hostile frame of many tiny tags cannot
// make it allocate more than a small multiple of its size, nor churn through
// growing slices.
func (s *jsonScanner) readTags(lim *Limits) (nostr.Tags, jsonFail) {
	start := s.pos
	ntags, nelems, f := s.countTags(lim)
	if f.msg != "" {
		return nil, f
	}
	s.pos = start
	tags := make(nostr.Tags, ntags)
	elems := make([]string, nelems)
	k := 0
	s.consume('[')
	for t := range tags {
		s.skipWS()
		s.consume(',')
		s.skipWS()
		s.consume('[')
		from := k
		for {
			s.skipWS()
			if k == len(elems) || s.peek() != '"' {
				return nil, s.syntax() // cannot happen after countTags
			}
			if elems[k], f = s.readString(); f.msg != "" {
				return nil, f
			}
			k++
			s.skipWS()
			if s.consume(']') {
				break
			}
			s.consume(',')
		}
		// Capped capacity: appending to one tag must not overwrite the next.
		tags[t] = nostr.Tag(elems[from:k:k])
	}
	s.skipWS()
	s.consume(']')
	return tags, jsonFail{}
}

// countTags checks that a tags value is an array of non-empty arrays of
// strings, with at most lim.MaxEventTags tags, and counts tags and elements.
func (s *jsonScanner) countTags(lim *Limits) (ntags, nelems int, f jsonFail) {
	const shape = "tags must be an array of arrays of strings"
	if !s.consume('[') {
		return 0, 0, s.typeFail(shape)
	}
	s.skipWS()
	if s.consume(']') {
		return 0, 0, jsonFail{}
	}
	for {
		s.skipWS()
		if !s.consume('[') {
			return 0, 0, s.typeFail(shape)
		}
		if ntags++; lim.MaxEventTags > 0 && ntags > lim.MaxEventTags {
			return 0, 0, jsonFail{msg: "too many tags"}
		}
		s.skipWS()
		if s.consume(']') {
			return 0, 0, jsonFail{msg: "tags must not be empty arrays"}
		}
		for {
			s.skipWS()
			if s.peek() != '"' {
				return 0, 0, s.typeFail(shape)
			}
			if f := s.skipString(); f.msg != "" {
				return 0, 0, f
			}
			nelems++
			s.skipWS()
			if s.consume(']') {
				break
			}
			if !s.consume(',') {
				return 0, 0, s.syntax()
			}
		}
		s.skipWS()
		if s.consume(']') {
			return ntags, nelems, jsonFail{}
		}
		if !s.consume(',') {
			return 0, 0, s.syntax()
		}
	}
}

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

// jsonFail is a parse failure: msg (without prefix) is empty on success.
// syntax marks malformed JSON, after which nothing more can be read; the
// other failures leave a well-formed value that can be skipped.
type jsonFail struct {
	msg    string
	syntax bool
}

// jsonScanner is a strict, allocation-frugal JSON reader over one frame.
// Every method works in time linear in the bytes it consumes; recursion
// happens only in skipValue, bounded by its depth argument.
type jsonScanner struct {
	data []byte
	pos  int
	// src, when set, is a copy of data that strings are sliced from; when
	// empty, each string is copied on its own so that long-lived values (sub
	// ids, filters) do not pin the whole frame.
	src string
}

// typeFail is a wrongly typed value, or malformed JSON if the frame ended
// where the value should be.
func (s *jsonScanner) typeFail(msg string) jsonFail {
	if s.pos >= len(s.data) {
		return s.syntax()
	}
	return jsonFail{msg: msg}
}

func (s *jsonScanner) syntax() jsonFail {
	if s.pos >= len(s.data) {
		return jsonFail{msg: "malformed JSON: unexpected end", syntax: true}
	}
	return jsonFail{msg: "malformed JSON at byte " + strconv.Itoa(s.pos), syntax: true}
}

func (s *jsonScanner) skipWS() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the current byte, or 0 at the end.
func (s *jsonScanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *jsonScanner) consume(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

func (s *jsonScanner) substr(i, j int) string {
	if s.src != "" {
		return s.src[i:j]
	}
	return string(s.data[i:j])
}

// readKey reads a string that is only compared, never kept (object keys,
// the verb). Without escapes it returns a view of the frame and allocates
// nothing: callers switch on string(key), which the compiler does without
// a copy.
func (s *jsonScanner) readKey() ([]byte, jsonFail) {
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '"':
			s.pos = i + 1
			return s.data[start:i], jsonFail{}
		case c == '\\' || c < 0x20:
			v, f := s.readString()
			return []byte(v), f
		}
	}
	s.pos = len(s.data)
	return nil, s.syntax()
}

// readString reads a JSON string; the current byte must be '"'.
func (s *jsonScanner) readString() (string, jsonFail) {
	start := s.pos + 1
	// Fast path: the first quote ends the string unless a backslash comes
	// before it. IndexByte is vectorised; the control-byte test goes a word
	// at a time.
	q := bytes.IndexByte(s.data[start:], '"')
	if q < 0 {
		return "", s.skipString() // reports where it is malformed
	}
	end := start + q
	if i := bytes.IndexByte(s.data[start:end], '\\'); i >= 0 {
		return s.readEscaped(start, start+i)
	}
	if i := indexControl(s.data[start:end]); i >= 0 {
		s.pos = start + i
		return "", s.syntax()
	}
	s.pos = end + 1
	return s.substr(start, end), jsonFail{}
}

// indexControl returns the index of the first byte below 0x20 (not allowed
// raw in a JSON string), or -1. It tests eight bytes at a time.
func indexControl(b []byte) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		// Sets the high bit of each byte below 0x20 (bytes >= 0x80 are
		// excluded by &^x), with no false negatives; confirm bytewise.
		if (x-0x20*lo)&^x&hi != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] < 0x20 {
			return i
		}
	}
	return -1
}

// readEscaped decodes a string with escapes; i is the first backslash.
// Lone surrogates are refused: they have no UTF-8 form, so the id a client
// computed over them would be whatever its encoder made of them.
func (s *jsonScanner) readEscaped(start, i int) (string, jsonFail) {
	d := s.data
	// Find the end first: the decoded string is no longer than the raw one,
	// so one allocation of that size is enough, and Builder.String does
	// not copy it again.
	open := s.pos
	if f := s.skipString(); f.msg != "" {
		return "", f
	}
	end := s.pos - 1
	s.pos = open
	var buf strings.Builder
	buf.Grow(end - start)
	buf.Write(d[start:i])
	for i < end {
		if d[i] != '\\' {
			j := bytes.IndexByte(d[i:end], '\\')
			if j < 0 {
				j = end - i
			}
			buf.Write(d[i : i+j])
			i += j
			continue
		}
		switch d[i+1] {
		case '"', '\\', '/':
			buf.WriteByte(d[i+1])
		case 'b':
			buf.WriteByte('\b')
		case 'f':
			buf.WriteByte('\f')
		case 'n':
			buf.WriteByte('\n')
		case 'r':
			buf.WriteByte('\r')
		case 't':
			buf.WriteByte('\t')
		case 'u':
			r, _ := hex4(d, i+2) // checked by skipString
			i += 6
			if utf16IsSurrogate(r) {
				r2, ok := rune(0), false
				if r < 0xdc00 && i+1 < end && d[i] == '\\' && d[i+1] == 'u' {
					r2, ok = hex4(d, i+2)
					ok = ok && r2 >= 0xdc00 && r2 <= 0xdfff
				}
				if !ok {
					s.pos = end + 1
					return "", jsonFail{msg: "string has an unpaired surrogate escape"}
				}
				r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
				i += 6
			}
			buf.WriteRune(r)
			continue
		}
		i += 2
	}
	s.pos = end + 1
	return buf.String(), jsonFail{}
}

func utf16IsSurrogate(r rune) bool { return r >= 0xd800 && r <= 0xdfff }

// hex4 decodes the 4 hex digits of a \u escape starting at d[i].
func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// readHex reads a string of n lowercase hex digits. On a wrong string it
// still returns the string, so that the caller can echo a usable id.
func (s *jsonScanner) readHex(name string, n int) (string, jsonFail) {
	bad := func() string { return name + " must be " + strconv.Itoa(n) + " lowercase hex characters" }
	if s.peek() != '"' {
		return "", s.typeFail(bad())
	}
	v, f := s.readString()
	if f.msg != "" {
		return "", f
	}
	if !isLowerHex(v, n) {
		return v, jsonFail{msg: bad()}
	}
	return v, jsonFail{}
}

func isLowerHex(v string, n int) bool {
	if len(v) != n {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isHex is isLowerHex that also allows upper case: such an id is still a
// safe and recognisable thing to echo in an OK.
func isHex(v string, n int) bool {
	if len(v) != n {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i] | 0x20; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// readUint reads a non-negative integer that fits an int64. Fractions and
// exponents are refused even when integral (1.0, 1e3): no correct encoder
// writes an integer that way, and the id hash is over the integer form.
func (s *jsonScanner) readUint(name string) (int64, jsonFail) {
	c := s.peek()
	if c != '-' && (c < '0' || c > '9') {
		return 0, s.typeFail(name + " must be a non-negative integer")
	}
	start := s.pos
	neg, integral, f := s.scanNumber()
	switch {
	case f.msg != "":
		return 0, f
	case neg:
		return 0, jsonFail{msg: name + " must be a non-negative integer"}
	case !integral:
		return 0, jsonFail{msg: name + " must be an integer"}
	}
	var v int64
	for _, c := range s.data[start:s.pos] {
		d := int64(c - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, jsonFail{msg: name + " is too large"}
		}
		v = v*10 + d
	}
	return v, jsonFail{}
}

// scanNumber moves past a number of the JSON grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) scanNumber() (neg, integral bool, f jsonFail) {
	d := s.data
	digits := func() bool {
		from := s.pos
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
		return s.pos > from
	}
	neg = s.consume('-')
	switch c := s.peek(); {
	case c == '0':
		s.pos++
	case c >= '1' && c <= '9':
		digits()
	default:
		return neg, false, s.syntax()
	}
	integral = true
	if s.consume('.') {
		integral = false
		if !digits() {
			return neg, false, s.syntax()
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.pos++
		integral = false
		if c := s.peek(); c == '+' || c == '-' {
			s.pos++
		}
		if !digits() {
			return neg, false, s.syntax()
		}
	}
	return neg, integral, jsonFail{}
}

// skipValue moves past any JSON value, checking its syntax, with at most
// depth levels of nesting. It allocates nothing.
func (s *jsonScanner) skipValue(depth int) jsonFail {
	switch c := s.peek(); c {
	case '"':
		return s.skipString()
	case '{', '[':
		if depth <= 0 {
			return jsonFail{msg: "JSON nested too deeply", syntax: true}
		}
		s.pos++
		end := byte(']')
		if c == '{' {
			end = '}'
		}
		s.skipWS()
		if s.consume(end) {
			return jsonFail{}
		}
		for {
			s.skipWS()
			if c == '{' {
				if s.peek() != '"' {
					return s.syntax()
				}
				if f := s.skipString(); f.msg != "" {
					return f
				}
				s.skipWS()
				if !s.consume(':') {
					return s.syntax()
				}
				s.skipWS()
			}
			if f := s.skipValue(depth - 1); f.msg != "" {
				return f
			}
			s.skipWS()
			if s.consume(end) {
				return jsonFail{}
			}
			if !s.consume(',') {
				return s.syntax()
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		_, _, f := s.scanNumber()
		return f
	}
}

func (s *jsonScanner) literal(lit string) jsonFail {
	if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
		s.pos += len(lit)
		return jsonFail{}
	}
	return s.syntax()
}

// skipString moves past a string, checking its escapes and that it holds
// no raw control bytes.
func (s *jsonScanner) skipString() jsonFail {
	d := s.data
	i := s.pos + 1
	for {
		q := bytes.IndexByte(d[i:], '"')
		if q < 0 {
			s.pos = len(d)
			return s.syntax()
		}
		end := i + q
		b := bytes.IndexByte(d[i:end], '\\')
		if b < 0 {
			if c := indexControl(d[i:end]); c >= 0 {
				s.pos = i + c
				return s.syntax()
			}
			s.pos = end + 1
			return jsonFail{}
		}
		// An escape before the quote: check the run up to it, then the
		// escape, and look again from after it.
		b += i
		if c := indexControl(d[i:b]); c >= 0 {
			s.pos = i + c
			return s.syntax()
		}
		if b+1 >= len(d) {
			s.pos = len(d)
			return s.syntax()
		}
		switch d[b+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i = b + 2
		case 'u':
			if _, ok := hex4(d, b+2); !ok {
				s.pos = b
				return s.syntax()
			}
			i = b + 6
		default:
			s.pos = b
			return s.syntax()
		}
	}
}

// canonicalEvent returns the JSON the relay stores and sends for ev, with the
// fields in NIP-01 order. Strings are escaped as in the NIP-01 serialization
// that the id hashes (go-nostr's, which matches JSON.stringify); invalid UTF-8,
// which parseClientMsg never lets through, becomes U+FFFD so the output is
// always valid JSON. go-nostr's MarshalJSON is correct but puts kind first.
func canonicalEvent(ev *nostr.Event) []byte {
	n := 64 + len(ev.ID) + len(ev.PubKey) + len(ev.Sig) + len(ev.Content) + 2
	for _, t := range ev.Tags {
		n += 3
		for _, e := range t {
			n += len(e) + 3
		}
	}
	b := make([]byte, 0, n+n/16)
	b = append(b, `{"id":`...)
	b = appendJSONString(b, ev.ID)
	b = append(b, `,"pubkey":`...)
	b = appendJSONString(b, ev.PubKey)
	b = append(b, `,"created_at":`...)
	b = strconv.AppendInt(b, int64(ev.CreatedAt), 10)
	b = append(b, `,"kind":`...)
	b = strconv.AppendInt(b, int64(ev.Kind), 10)
	b = append(b, `,"tags":[`...)
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
	b = append(b, `],"content":`...)
	b = appendJSONString(b, ev.Content)
	b = append(b, `,"sig":`...)
	b = appendJSONString(b, ev.Sig)
	return append(b, '}')
}

// appendJSONString appends s as a JSON string, escaping as NIP-01's
// serialization does: the short escapes for \b \t \n \f \r " \, \u00XX for
// other control characters, everything else verbatim.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for len(s) > 0 {
		n := plainPrefix(s)
		b = append(b, s[:n]...)
		if s = s[n:]; len(s) == 0 {
			break
		}
		c := s[0]
		if c >= 0x80 {
			r, size := utf8.DecodeRuneInString(s)
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[:size]...)
			}
			s = s[size:]
			continue
		}
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\f':
			b = append(b, '\\', 'f')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		s = s[1:]
	}
	return append(b, '"')
}

// plainPrefix returns the length of the prefix of s made of printable ASCII
// other than '"' and '\\', which JSON copies verbatim. It tests eight bytes
// at a time.
func plainPrefix(s string) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		q := x ^ '"'*lo
		bs := x ^ '\\'*lo
		// High bit set in a byte that is < 0x20, '"', '\\' or >= 0x80
		// (may flag bytes after a true hit, never miss one).
		if ((x-0x20*lo)|(q-lo)|(bs-lo)|x)&hi != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			break
		}
	}
	return i
}
