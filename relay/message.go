package relay

import (
	"strconv"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

// The NIP-01 client messages (EVENT, REQ, CLOSE, COUNT, AUTH), read by
// the strict JSON scanner of jsonscan.go; events and filters are read by
// eventjson.go and filterjson.go.

// clientMsg is one parsed client frame.
type clientMsg struct {
	verb    string         // "EVENT", "REQ", "CLOSE", "COUNT", "AUTH"
	event   *nostr.Event   // EVENT (and AUTH)
	subID   string         // REQ, CLOSE, COUNT
	filters []nostr.Filter // REQ, COUNT
}

// parseError says how to answer a frame that could not be parsed: as an OK
// false (eventID set), a CLOSED (closed set, for subID) or a NOTICE
// (neither). reason carries a NIP-01 prefix.
//
// eventID is only set to 64 hex digits, so it is safe to echo. subID is the
// REQ's or COUNT's id as sent, cut to the length limit when it is longer
// (NIP-01: a refused REQ gets a CLOSED); it may be "" when the client sent
// an empty id.
type parseError struct {
	eventID, subID, reason string
	closed                 bool
}

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

// closedErr refuses a REQ or COUNT with a CLOSED for subID.
func closedErr(subID, msg string) *parseError {
	return &parseError{subID: subID, closed: true, reason: wisp.Reason(wisp.PrefixInvalid, msg)}
}

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
		return clientMsg{}, closedErr(subID, msg)
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

// parseSubID reads ", subID". A sub id that is not a string cannot be used in
// a CLOSED, so that error is a NOTICE; a REQ or COUNT whose string id is
// empty or too long gets a CLOSED with the id as sent, cut to the limit
// (NIP-01: a REQ the relay refuses is answered with CLOSED). CLOSE asks for
// no answer, so its errors are NOTICEs.
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
		msg := "subscription id must be 1 to " + strconv.Itoa(maxLen) + " characters"
		if verb == "CLOSE" {
			return "", notice(msg)
		}
		return "", closedErr(cutRunes(id, maxLen), msg)
	}
	return id, nil
}

// cutRunes returns the first n characters of s.
func cutRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
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
