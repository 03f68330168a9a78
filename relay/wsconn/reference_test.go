package wsconn

import (
	"fmt"
	"strings"
)

// An independent reading of the server's side of RFC 6455, deliberately
// simple and slow: the whole stream in memory, one byte at a time, with its
// own UTF-8 check written from RFC 3629 section 4. FuzzReader compares the
// real reader against it; it shares no code with wsconn.go.
//
// Where the RFC leaves the receiver a choice, this reading takes the
// choice the relay wants, and the real reader must match:
//   - a frame is refused as soon as the bytes read so far show the
//     violation (a header at its first two bytes, a length at its eight),
//     and a text message as soon as a whole frame of it cannot begin valid
//     UTF-8 (sections 5.6 and 8.1 allow failing at the end, or earlier);
//   - a message whose payloads add up past the limit fails with 1009 once
//     the header of the frame that passes it is read (section 10.4);
//   - a length in more bytes than needed is accepted (section 5.2 asks
//     the sender, not the receiver).

// refEvent is what a reader reports: a message, a ping or pong, and at the
// end a close from the peer, a failure with a code, or the end of the
// bytes.
type refEvent struct {
	kind string // "message", "ping", "pong", "close", "fail", "eof"
	op   Opcode // of a message
	data string // payload, or a close's reason
	code StatusCode
}

func (e refEvent) String() string {
	d := e.data
	if len(d) > 40 {
		d = fmt.Sprintf("%.40s…(%d bytes)", d, len(d))
	}
	switch e.kind {
	case "message":
		return fmt.Sprintf("message(op %d, %q)", e.op, d)
	case "close":
		return fmt.Sprintf("close(%d, %q)", e.code, d)
	case "fail":
		return fmt.Sprintf("fail(%d)", e.code)
	case "eof":
		return "eof"
	}
	return fmt.Sprintf("%s(%q)", e.kind, d)
}

func eventsString(es []refEvent) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.String()
	}
	return strings.Join(parts, " ")
}

// refDecode reads a client's byte stream as RFC 6455 says a server must,
// with a read limit on a message's size.
func refDecode(stream []byte, limit uint64) []refEvent {
	var out []refEvent
	fail := func(code StatusCode) []refEvent { return append(out, refEvent{kind: "fail", code: code}) }
	eof := func() []refEvent { return append(out, refEvent{kind: "eof"}) }
	pos := 0
	take := func(n uint64) ([]byte, bool) {
		if uint64(len(stream)-pos) < n {
			return nil, false
		}
		b := stream[pos : pos+int(n)]
		pos += int(n)
		return b, true
	}

	var msgOp byte // 0: no message started
	var msg []byte
	var text refUTF8
	for {
		// Section 5.2: FIN, RSV1-3, opcode; MASK, payload length.
		h, ok := take(2)
		if !ok {
			return eof()
		}
		finBit := h[0]&0x80 != 0
		rsv := h[0] >> 4 & 7
		opcode := h[0] & 0xf
		maskBit := h[1]&0x80 != 0
		len7 := h[1] & 0x7f
		control := opcode >= 8
		switch {
		case rsv != 0: // no extension negotiated (5.2)
			return fail(StatusProtocolError)
		case !maskBit: // a client masks every frame (5.1)
			return fail(StatusProtocolError)
		case opcode != 0 && opcode != 1 && opcode != 2 && opcode != 8 && opcode != 9 && opcode != 10: // reserved (5.2)
			return fail(StatusProtocolError)
		case control && (!finBit || len7 > 125): // 5.5
			return fail(StatusProtocolError)
		}
		length := uint64(len7)
		switch len7 {
		case 126:
			b, ok := take(2)
			if !ok {
				return eof()
			}
			length = uint64(b[0])<<8 | uint64(b[1])
		case 127:
			b, ok := take(8)
			if !ok {
				return eof()
			}
			if b[0]&0x80 != 0 { // "the most significant bit MUST be 0"
				return fail(StatusProtocolError)
			}
			length = 0
			for _, x := range b {
				length = length<<8 | uint64(x)
			}
		}
		key, ok := take(4)
		if !ok {
			return eof()
		}
		if !control {
			// Section 5.4: fragments of one message, nothing interleaved
			// but control frames.
			if opcode == 0 && msgOp == 0 || opcode != 0 && msgOp != 0 {
				return fail(StatusProtocolError)
			}
			if uint64(len(msg))+length > limit || length > limit {
				return fail(StatusMessageTooBig)
			}
		}
		masked, ok := take(length)
		if !ok {
			return eof()
		}
		payload := make([]byte, len(masked))
		for i := range masked { // 5.3
			payload[i] = masked[i] ^ key[i%4]
		}
		switch opcode {
		case 9:
			out = append(out, refEvent{kind: "ping", data: string(payload)})
			continue
		case 10:
			out = append(out, refEvent{kind: "pong", data: string(payload)})
			continue
		case 8: // 5.5.1, 7.1.5, 7.4
			if len(payload) == 0 {
				return append(out, refEvent{kind: "close", code: StatusNoStatusRcvd})
			}
			if len(payload) == 1 {
				return fail(StatusProtocolError)
			}
			code := uint16(payload[0])<<8 | uint16(payload[1])
			if !refCloseCodeOK(code) {
				return fail(StatusProtocolError)
			}
			var r refUTF8
			if !r.feed(payload[2:]) || !r.complete() {
				return fail(StatusInvalidPayload)
			}
			return append(out, refEvent{kind: "close", code: StatusCode(code), data: string(payload[2:])})
		}
		if opcode != 0 {
			msgOp = opcode
		}
		msg = append(msg, payload...)
		if msgOp == 1 && (!text.feed(payload) || finBit && !text.complete()) { // 8.1
			return fail(StatusInvalidPayload)
		}
		if finBit {
			out = append(out, refEvent{kind: "message", op: Opcode(msgOp), data: string(msg)})
			msgOp, msg, text = 0, nil, refUTF8{}
		}
	}
}

// refCloseCodeOK lists the codes a peer may send (section 7.4.1, 7.4.2 and
// the IANA registry of section 11.7: 1012-1014 are registered since).
func refCloseCodeOK(code uint16) bool {
	switch code {
	case 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014:
		return true
	}
	return 3000 <= code && code <= 4999
}

// refUTF8 checks UTF-8 a byte at a time, straight from the grammar of RFC
// 3629 section 4:
//
//	UTF8-1 = %x00-7F
//	UTF8-2 = %xC2-DF UTF8-tail
//	UTF8-3 = %xE0 %xA0-BF UTF8-tail / %xE1-EC 2( UTF8-tail ) /
//	         %xED %x80-9F UTF8-tail / %xEE-EF 2( UTF8-tail )
//	UTF8-4 = %xF0 %x90-BF 2( UTF8-tail ) / %xF1-F3 3( UTF8-tail ) /
//	         %xF4 %x80-8F 2( UTF8-tail )
//	UTF8-tail = %x80-BF
type refUTF8 struct {
	need   int  // bytes still to come of the current character
	lo, hi byte // the range of the next one
}

// feed reports whether the bytes so far can still begin valid UTF-8.
func (u *refUTF8) feed(p []byte) bool {
	for _, b := range p {
		if u.need > 0 {
			if b < u.lo || b > u.hi {
				return false
			}
			u.need, u.lo, u.hi = u.need-1, 0x80, 0xbf
			continue
		}
		switch {
		case b <= 0x7f:
		case 0xc2 <= b && b <= 0xdf:
			u.need, u.lo, u.hi = 1, 0x80, 0xbf
		case b == 0xe0:
			u.need, u.lo, u.hi = 2, 0xa0, 0xbf
		case 0xe1 <= b && b <= 0xec, b == 0xee, b == 0xef:
			u.need, u.lo, u.hi = 2, 0x80, 0xbf
		case b == 0xed:
			u.need, u.lo, u.hi = 2, 0x80, 0x9f
		case b == 0xf0:
			u.need, u.lo, u.hi = 3, 0x90, 0xbf
		case 0xf1 <= b && b <= 0xf3:
			u.need, u.lo, u.hi = 3, 0x80, 0xbf
		case b == 0xf4:
			u.need, u.lo, u.hi = 3, 0x80, 0x8f
		default:
			return false
		}
	}
	return true
}

// complete reports whether the bytes fed end with a whole character.
func (u *refUTF8) complete() bool { return u.need == 0 }
