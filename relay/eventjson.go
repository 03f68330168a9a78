package relay

import (
	"strconv"

	"github.com/nbd-wtf/go-nostr"
)

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
