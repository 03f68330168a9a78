package wsconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"unicode/utf8"
)

// The protocol suite: the cases of the Autobahn test suite's sections 1-7
// (framing, pings and pongs, reserved bits, opcodes, fragmentation, UTF-8,
// close handling), numbered as there, each written as hand-made client
// frames over a real TCP connection to an echo server built on this
// package (echoServerVia), run over both read paths. A case lists what the
// server must send back: echoes and pongs in order, then its close frame.
// Where Autobahn waits between writes, a case sends them as separate
// writes ("frame-wise"), or byte by byte ("octet-wise"); a case that must
// fail fast leaves the rest of the message unsent, so a server that waits
// for it times out.
//
// Differences from Autobahn, by design: every ping is answered (Autobahn
// also accepts answering only the last); a server-side violation always
// gets a close frame with its code (Autobahn also accepts a bare TCP
// close); after the last case of a section that sends no close, the
// harness sends close 1000 and expects it echoed.

// protocolCase is one case of the suite.
type protocolCase struct {
	id, what string
	send     [][]byte // written in order, one write each
	want     []reply
}

// reply is a frame the server must send. For a close frame, payload is
// the code only; the reason must merely be UTF-8.
type reply struct {
	op      Opcode
	payload []byte
	fail    bool // a close for a violation: the server closes first
}

func echo(op Opcode, p string) reply { return reply{op: op, payload: []byte(p)} }
func pong(p string) reply            { return reply{op: OpPong, payload: []byte(p)} }
func closeEcho(code StatusCode) reply {
	return reply{op: OpClose, payload: binary.BigEndian.AppendUint16(nil, uint16(code))}
}
func closeEmpty() reply { return reply{op: OpClose, payload: []byte{}} }
func failWith(code StatusCode) reply {
	return reply{op: OpClose, payload: binary.BigEndian.AppendUint16(nil, uint16(code)), fail: true}
}

// Frames a client sends.
func frag(op Opcode, p string) []byte { return clientFrame(false, op, []byte(p)) }
func fin(op Opcode, p string) []byte  { return clientFrame(true, op, []byte(p)) }
func text(p string) []byte            { return fin(OpText, p) }
func ping(p string) []byte            { return fin(OpPing, p) }
func closeFrame(code uint16, why string) []byte {
	return fin(OpClose, string(binary.BigEndian.AppendUint16(nil, code))+why)
}

// withRSV sets reserved bits (1-7) on a frame.
func withRSV(f []byte, rsv byte) []byte {
	f = bytes.Clone(f)
	f[0] |= rsv << 4
	return f
}

// Ways of writing frames.
func whole(frames ...[]byte) [][]byte { return [][]byte{bytes.Join(frames, nil)} }
func frameWise(frames ...[]byte) [][]byte {
	return frames
}
func chops(n int, frames ...[]byte) [][]byte {
	b := bytes.Join(frames, nil)
	var out [][]byte
	for len(b) > 0 {
		k := min(n, len(b))
		out = append(out, b[:k])
		b = b[k:]
	}
	return out
}
func octetWise(frames ...[]byte) [][]byte { return chops(1, frames...) }

func protocolCases() []protocolCase {
	size := func(n int) string { return strings.Repeat("*", n) }
	cases := []protocolCase{
		// 1 Framing: messages of every length encoding, echoed.
		{"1.1.1", "text, 0 bytes", whole(text("")), []reply{echo(OpText, "")}},
		{"1.1.2", "text, 125 bytes", whole(text(size(125))), []reply{echo(OpText, size(125))}},
		{"1.1.3", "text, 126 bytes", whole(text(size(126))), []reply{echo(OpText, size(126))}},
		{"1.1.4", "text, 127 bytes", whole(text(size(127))), []reply{echo(OpText, size(127))}},
		{"1.1.5", "text, 128 bytes", whole(text(size(128))), []reply{echo(OpText, size(128))}},
		{"1.1.6", "text, 65535 bytes", whole(text(size(65535))), []reply{echo(OpText, size(65535))}},
		{"1.1.7", "text, 65536 bytes", whole(text(size(65536))), []reply{echo(OpText, size(65536))}},
		{"1.1.8", "text, 65536 bytes in chops of 997", chops(997, text(size(65536))), []reply{echo(OpText, size(65536))}},
		{"1.2.1", "binary, 0 bytes", whole(fin(OpBinary, "")), []reply{echo(OpBinary, "")}},
		{"1.2.2", "binary, 125 bytes", whole(fin(OpBinary, size(125))), []reply{echo(OpBinary, size(125))}},
		{"1.2.3", "binary, 126 bytes", whole(fin(OpBinary, size(126))), []reply{echo(OpBinary, size(126))}},
		{"1.2.4", "binary, 127 bytes", whole(fin(OpBinary, size(127))), []reply{echo(OpBinary, size(127))}},
		{"1.2.5", "binary, 128 bytes", whole(fin(OpBinary, size(128))), []reply{echo(OpBinary, size(128))}},
		{"1.2.6", "binary, 65535 bytes", whole(fin(OpBinary, size(65535))), []reply{echo(OpBinary, size(65535))}},
		{"1.2.7", "binary, 65536 bytes", whole(fin(OpBinary, size(65536))), []reply{echo(OpBinary, size(65536))}},
		{"1.2.8", "binary, 65536 bytes in chops of 997", chops(997, fin(OpBinary, size(65536))), []reply{echo(OpBinary, size(65536))}},

		// 2 Pings and pongs.
		{"2.1", "ping, no payload", whole(ping("")), []reply{pong("")}},
		{"2.2", "ping, text payload", whole(ping("Hello, world!")), []reply{pong("Hello, world!")}},
		{"2.3", "ping, binary payload", whole(ping("\x00\xff\xfe\xfd\xfc\xfb\x00\xff")), []reply{pong("\x00\xff\xfe\xfd\xfc\xfb\x00\xff")}},
		{"2.4", "ping, 125 bytes", whole(ping(size(125))), []reply{pong(size(125))}},
		{"2.5", "ping, 126 bytes", whole(ping(size(126))), []reply{failWith(StatusProtocolError)}},
		{"2.6", "ping, 125 bytes, octet-wise", octetWise(ping(size(125))), []reply{pong(size(125))}},
		{"2.7", "unsolicited pong, no payload", whole(fin(OpPong, "")), nil},
		{"2.8", "unsolicited pong, payload", whole(fin(OpPong, "unsolicited")), nil},
		{"2.9", "unsolicited pong, then ping", whole(fin(OpPong, "unsolicited"), ping("solicited")), []reply{pong("solicited")}},
		{"2.10", "10 pings", whole(bytes.Repeat(ping("payload"), 10)), repeatReply(pong("payload"), 10)},
		{"2.11", "10 pings, octet-wise", octetWise(bytes.Repeat(ping("payload"), 10)), repeatReply(pong("payload"), 10)},

		// 3 Reserved bits: no extension is negotiated, so any set bit fails.
		{"3.1", "text, RSV 1", whole(withRSV(text("Hello"), 1)), []reply{failWith(StatusProtocolError)}},
		{"3.2", "text, text with RSV 2, ping", whole(text("Hello"), withRSV(text("Hello"), 2), ping("")),
			[]reply{echo(OpText, "Hello"), failWith(StatusProtocolError)}},
		{"3.3", "as 3.2 with RSV 3, frame-wise", frameWise(text("Hello"), withRSV(text("Hello"), 3), ping("")),
			[]reply{echo(OpText, "Hello"), failWith(StatusProtocolError)}},
		{"3.4", "as 3.2 with RSV 4, octet-wise", octetWise(text("Hello"), withRSV(text("Hello"), 4), ping("")),
			[]reply{echo(OpText, "Hello"), failWith(StatusProtocolError)}},
		{"3.5", "binary, RSV 5", whole(withRSV(fin(OpBinary, "\x00\xff"), 5)), []reply{failWith(StatusProtocolError)}},
		{"3.6", "ping, RSV 6", whole(withRSV(ping("Hello"), 6)), []reply{failWith(StatusProtocolError)}},
		{"3.7", "close, RSV 7", whole(withRSV(closeFrame(1000, ""), 7)), []reply{failWith(StatusProtocolError)}},

		// 4 Opcodes: reserved ones fail.
		{"4.1.1", "opcode 3", whole(fin(3, "")), []reply{failWith(StatusProtocolError)}},
		{"4.1.2", "opcode 4, payload", whole(fin(4, "reserved")), []reply{failWith(StatusProtocolError)}},
		{"4.1.3", "text, opcode 5, ping", whole(text("Hello"), fin(5, ""), ping("")),
			[]reply{echo(OpText, "Hello"), failWith(StatusProtocolError)}},
		{"4.1.4", "text, opcode 6 with payload, ping, frame-wise", frameWise(text("Hello"), fin(6, "reserved"), ping("")),
			[]reply{echo(OpText, "Hello"), failWith(StatusProtocolError)}},
		{"4.1.5", "text, opcode 7 with payload, ping, octet-wise", octetWise(text("Hello"), fin(7, "reserved"), ping("")),
			[]reply{echo(OpText, "Hello"), failWith(StatusProtocolError)}},
		{"4.2.1", "opcode 11", whole(fin(11, "")), []reply{failWith(StatusProtocolError)}},
		{"4.2.2", "opcode 12, payload", whole(fin(12, "reserved")), []reply{failWith(StatusProtocolError)}},
		{"4.2.3", "text, opcode 13, ping", whole(text("Hello"), fin(13, ""), ping("")),
			[]reply{echo(OpText, "Hello"), failWith(StatusProtocolError)}},
		{"4.2.4", "text, opcode 14 with payload, ping, frame-wise", frameWise(text("Hello"), fin(14, "reserved"), ping("")),
			[]reply{echo(OpText, "Hello"), failWith(StatusProtocolError)}},
		{"4.2.5", "text, opcode 15 with payload, ping, octet-wise", octetWise(text("Hello"), fin(15, "reserved"), ping("")),
			[]reply{echo(OpText, "Hello"), failWith(StatusProtocolError)}},

		// 5 Fragmentation.
		{"5.1", "ping in 2 fragments", whole(frag(OpPing, "frag1"), fin(OpContinuation, "frag2")), []reply{failWith(StatusProtocolError)}},
		{"5.2", "pong in 2 fragments", whole(frag(OpPong, "frag1"), fin(OpContinuation, "frag2")), []reply{failWith(StatusProtocolError)}},
		{"5.3", "text in 2 fragments", whole(frag(OpText, "frag1"), fin(OpContinuation, "frag2")), []reply{echo(OpText, "frag1frag2")}},
		{"5.4", "as 5.3, octet-wise", octetWise(frag(OpText, "frag1"), fin(OpContinuation, "frag2")), []reply{echo(OpText, "frag1frag2")}},
		{"5.5", "as 5.3, frame-wise", frameWise(frag(OpText, "frag1"), fin(OpContinuation, "frag2")), []reply{echo(OpText, "frag1frag2")}},
		{"5.6", "text in 2 fragments, ping between", whole(frag(OpText, "frag1"), ping("ping"), fin(OpContinuation, "frag2")),
			[]reply{pong("ping"), echo(OpText, "frag1frag2")}},
		{"5.7", "as 5.6, octet-wise", octetWise(frag(OpText, "frag1"), ping("ping"), fin(OpContinuation, "frag2")),
			[]reply{pong("ping"), echo(OpText, "frag1frag2")}},
		{"5.8", "as 5.6, frame-wise", frameWise(frag(OpText, "frag1"), ping("ping"), fin(OpContinuation, "frag2")),
			[]reply{pong("ping"), echo(OpText, "frag1frag2")}},
		{"5.9", "continuation (FIN) with nothing to continue, then text", whole(fin(OpContinuation, "cont"), text("Hello")),
			[]reply{failWith(StatusProtocolError)}},
		{"5.10", "as 5.9, octet-wise", octetWise(fin(OpContinuation, "cont"), text("Hello")), []reply{failWith(StatusProtocolError)}},
		{"5.11", "as 5.9, frame-wise", frameWise(fin(OpContinuation, "cont"), text("Hello")), []reply{failWith(StatusProtocolError)}},
		{"5.12", "continuation (no FIN) with nothing to continue, then text", whole(frag(OpContinuation, "cont"), text("Hello")),
			[]reply{failWith(StatusProtocolError)}},
		{"5.13", "as 5.12, octet-wise", octetWise(frag(OpContinuation, "cont"), text("Hello")), []reply{failWith(StatusProtocolError)}},
		{"5.14", "as 5.12, frame-wise", frameWise(frag(OpContinuation, "cont"), text("Hello")), []reply{failWith(StatusProtocolError)}},
		{"5.15", "text in 2 fragments, then a continuation with nothing to continue",
			whole(frag(OpText, "fragment1"), fin(OpContinuation, "fragment2"), frag(OpContinuation, "fragment3"), text("fragment4")),
			[]reply{echo(OpText, "fragment1fragment2"), failWith(StatusProtocolError)}},
		{"5.16", "continuation, text fragments, twice",
			whole(frag(OpContinuation, "fragment1"), frag(OpText, "fragment2"), fin(OpContinuation, "fragment3"),
				frag(OpContinuation, "fragment1"), frag(OpText, "fragment2"), fin(OpContinuation, "fragment3")),
			[]reply{failWith(StatusProtocolError)}},
		{"5.17", "as 5.16 with FIN on the first continuation",
			whole(fin(OpContinuation, "fragment1"), frag(OpText, "fragment2"), fin(OpContinuation, "fragment3")),
			[]reply{failWith(StatusProtocolError)}},
		{"5.18", "text in 2 fragments, both with opcode text", whole(frag(OpText, "fragment1"), text("fragment2")),
			[]reply{failWith(StatusProtocolError)}},
		{"5.19", "text in 5 fragments, pings after the 2nd and 4th, frame-wise",
			frameWise(frag(OpText, "fragment1"), frag(OpContinuation, "fragment2"), ping("pongme 1!"),
				frag(OpContinuation, "fragment3"), frag(OpContinuation, "fragment4"), ping("pongme 2!"), fin(OpContinuation, "fragment5")),
			[]reply{pong("pongme 1!"), pong("pongme 2!"), echo(OpText, "fragment1fragment2fragment3fragment4fragment5")}},
		{"5.20", "as 5.19, octet-wise",
			octetWise(frag(OpText, "fragment1"), frag(OpContinuation, "fragment2"), ping("pongme 1!"),
				frag(OpContinuation, "fragment3"), frag(OpContinuation, "fragment4"), ping("pongme 2!"), fin(OpContinuation, "fragment5")),
			[]reply{pong("pongme 1!"), pong("pongme 2!"), echo(OpText, "fragment1fragment2fragment3fragment4fragment5")}},

		// 6 UTF-8: the fixed cases; utf8Cases adds the samples.
		{"6.1.1", "empty text", whole(text("")), []reply{echo(OpText, "")}},
		{"6.1.2", "empty text in 3 empty fragments", whole(frag(OpText, ""), frag(OpContinuation, ""), fin(OpContinuation, "")),
			[]reply{echo(OpText, "")}},
		{"6.1.3", "text in 3 fragments, first and last empty", whole(frag(OpText, ""), frag(OpContinuation, "middle"), fin(OpContinuation, "")),
			[]reply{echo(OpText, "middle")}},
		// 6.4: fail fast. The message is never finished: a server that
		// waits for its end to check it times out.
		{"6.4.1", "invalid second fragment, third never sent", frameWise(frag(OpText, "κόσμε"), frag(OpContinuation, "\xf4\x90\x80\x80")),
			[]reply{failWith(StatusInvalidPayload)}},
		{"6.4.2", "a character cut, its end invalid, rest never sent", frameWise(frag(OpText, "κόσμε\xf4"), frag(OpContinuation, "\x90")),
			[]reply{failWith(StatusInvalidPayload)}},
		{"6.4.3", "invalid first fragment, rest never sent", whole(frag(OpText, "κό\xed\xa0\x80")), []reply{failWith(StatusInvalidPayload)}},
		{"6.4.4", "as 6.4.3, octet-wise", octetWise(frag(OpText, "κό\xed\xa0\x80")), []reply{failWith(StatusInvalidPayload)}},
		{"6.x.1", "the last fragment ends inside a character", whole(frag(OpText, "κό"), fin(OpContinuation, "\xce")),
			[]reply{failWith(StatusInvalidPayload)}},
		{"6.x.2", "a fragment ends inside a character, the next completes it", whole(frag(OpText, "κ\xcf"), fin(OpContinuation, "\x8cσμε")),
			[]reply{echo(OpText, "κόσμε")}},
		{"6.x.3", "a binary message is not UTF-8 checked", whole(fin(OpBinary, "\xff\xfe")), []reply{echo(OpBinary, "\xff\xfe")}},

		// 7 Close handling.
		{"7.1.1", "text, then close", whole(text("Hello World!"), closeFrame(1000, "")), []reply{echo(OpText, "Hello World!"), closeEcho(1000)}},
		{"7.1.2", "close twice", whole(closeFrame(1000, ""), closeFrame(1000, "")), []reply{closeEcho(1000)}},
		{"7.1.3", "close, then ping", whole(closeFrame(1000, ""), ping("ping")), []reply{closeEcho(1000)}},
		{"7.1.4", "close, then text", whole(closeFrame(1000, ""), text("text")), []reply{closeEcho(1000)}},
		{"7.1.5", "first fragment, close, second fragment", whole(frag(OpText, "fragment1"), closeFrame(1000, ""), fin(OpContinuation, "fragment2")),
			[]reply{closeEcho(1000)}},
		{"7.1.6", "256 KiB text, then ping, then close", whole(text(size(256<<10)), ping("ping"), closeFrame(1000, "")),
			[]reply{echo(OpText, size(256<<10)), pong("ping"), closeEcho(1000)}},
		{"7.3.1", "close, no payload", whole(fin(OpClose, "")), []reply{closeEmpty()}},
		{"7.3.2", "close, 1-byte payload", whole(fin(OpClose, "\x03")), []reply{failWith(StatusProtocolError)}},
		{"7.3.3", "close 1000", whole(closeFrame(1000, "")), []reply{closeEcho(1000)}},
		{"7.3.4", "close 1000 with a reason", whole(closeFrame(1000, "Hello World!")), []reply{closeEcho(1000)}},
		{"7.3.5", "close 1000 with a 123-byte reason", whole(closeFrame(1000, size(123))), []reply{closeEcho(1000)}},
		{"7.3.6", "close 1000 with a 124-byte reason (126 bytes)", whole(closeFrame(1000, size(124))), []reply{failWith(StatusProtocolError)}},
		{"7.5.1", "close with a reason that is not UTF-8", whole(closeFrame(1000, "κόσμε\xed\xa0\x80edited")), []reply{failWith(StatusInvalidPayload)}},

		// Beyond Autobahn (a server's own obligations).
		{"x.1", "unmasked text", whole([]byte{0x81, 0x02, 'h', 'i'}), []reply{failWith(StatusProtocolError)}},
		{"x.2", "unmasked close", whole([]byte{0x88, 0x02, 0x03, 0xe8}), []reply{failWith(StatusProtocolError)}},
		{"x.3", "64-bit length with its most significant bit set",
			whole([]byte{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o'}), []reply{failWith(StatusProtocolError)}},
		{"x.4", "a 64-bit length for a short message", whole([]byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 'h', 'i'}),
			[]reply{echo(OpText, "hi")}},
		{"x.5", "a message over the limit", whole(fin(OpBinary, size(protocolLimit+1))), []reply{failWith(StatusMessageTooBig)}},
		{"x.6", "fragments over the limit together", whole(frag(OpBinary, size(protocolLimit/2+1)), fin(OpContinuation, size(protocolLimit/2))),
			[]reply{failWith(StatusMessageTooBig)}},
	}
	// 7.7 valid codes are echoed; 7.9 and 7.13 invalid ones fail.
	for i, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cases = append(cases, protocolCase{fmt.Sprintf("7.7.%d", i+1), fmt.Sprintf("close %d", code),
			whole(closeFrame(code, "")), []reply{closeEcho(StatusCode(code))}})
	}
	for i, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999} {
		cases = append(cases, protocolCase{fmt.Sprintf("7.9.%d", i+1), fmt.Sprintf("close %d", code),
			whole(closeFrame(code, "")), []reply{failWith(StatusProtocolError)}})
	}
	for i, code := range []uint16{5000, 65535} {
		cases = append(cases, protocolCase{fmt.Sprintf("7.13.%d", i+1), fmt.Sprintf("close %d", code),
			whole(closeFrame(code, "")), []reply{failWith(StatusProtocolError)}})
	}
	return append(cases, utf8Cases()...)
}

// protocolLimit is the echo server's read limit in the suite.
const protocolLimit = 1 << 20

// utf8Samples are the texts of Autobahn's 6.2-6.23 (after Markus Kuhn's
// UTF-8 decoder stress test), each valid or not.
var utf8Samples = []struct {
	id    string
	text  string
	valid bool
}{
	{"6.2", "Hello-µ@ßöäüàá-UTF-8!!", true},
	{"6.3", "κόσμε\xed\xa0\x80edited", false},
	{"6.5", "κόσμε", true},
	{"6.7.1", "\x00", true},
	{"6.7.2", "\u0080", true},
	{"6.7.3", "\u0800", true},
	{"6.7.4", "\U00010000", true},
	{"6.8.1", "\xf8\x88\x80\x80\x80", false}, // 5 bytes
	{"6.8.2", "\xfc\x84\x80\x80\x80\x80", false},
	{"6.9.1", "\x7f", true},
	{"6.9.2", "\u07ff", true},
	{"6.9.3", "\uffff", true},
	{"6.9.4", "\U0010ffff", true},
	{"6.10.1", "\xf7\xbf\xbf\xbf", false},
	{"6.10.2", "\xfb\xbf\xbf\xbf\xbf", false},
	{"6.11.1", "\ud7ff", true},
	{"6.11.2", "\ue000", true},
	{"6.11.3", "\ufffd", true},
	{"6.11.5", "\xf4\x90\x80\x80", false}, // above U+10FFFF
	{"6.12.1", "\x80", false},
	{"6.12.2", "\xbf", false},
	{"6.12.3", "\x80\xbf", false},
	{"6.12.8", "\x80\xbf\x80\xbf\x80\xbf\x80", false},
	{"6.13.1", "\xc0 \xc1 \xc2 \xdf ", false},
	{"6.13.2", "\xe0 \xef ", false},
	{"6.13.3", "\xf0 \xf7 ", false},
	{"6.14.1", "\xc0", false},
	{"6.14.2", "\xe0\x80", false},
	{"6.14.3", "\xf0\x80\x80", false},
	{"6.14.6", "\xdf", false},
	{"6.14.7", "\xef\xbf", false},
	{"6.14.8", "\xf7\xbf\xbf", false},
	{"6.15.1", "\xc0\xe0\x80\xf0\x80\x80\xdf\xef\xbf\xf7\xbf\xbf", false},
	{"6.16.1", "\xfe", false},
	{"6.16.2", "\xff", false},
	{"6.16.3", "\xfe\xfe\xff\xff", false},
	{"6.17.1", "\xc0\xaf", false}, // overlong '/'
	{"6.17.2", "\xe0\x80\xaf", false},
	{"6.17.3", "\xf0\x80\x80\xaf", false},
	{"6.18.1", "\xc1\xbf", false},
	{"6.18.2", "\xe0\x9f\xbf", false},
	{"6.18.3", "\xf0\x8f\xbf\xbf", false},
	{"6.19.1", "\xc0\x80", false}, // overlong NUL
	{"6.19.2", "\xe0\x80\x80", false},
	{"6.20.1", "\xed\xa0\x80", false}, // UTF-16 surrogates
	{"6.20.7", "\xed\xbf\xbf", false},
	{"6.21.1", "\xed\xa0\x80\xed\xb0\x80", false},
	{"6.21.8", "\xed\xaf\xbf\xed\xbf\xbf", false},
	{"6.22.1", "\uFFFE", true}, // noncharacters are valid UTF-8
	{"6.22.34", "\U0010FFFE", true},
	{"6.23.1", "\uFFFD", true},
	{"6.23.7", "\uFEFF", true},
}

// utf8Cases sends each sample as one frame, and fragmented after every
// byte (Autobahn's 6.2.4 and 6.6), so characters are cut across frames.
func utf8Cases() []protocolCase {
	var cases []protocolCase
	for _, s := range utf8Samples {
		if utf8.ValidString(s.text) != s.valid {
			panic("utf8Samples: " + s.id) // the table itself is wrong
		}
		want := []reply{echo(OpText, s.text)}
		if !s.valid {
			want = []reply{failWith(StatusInvalidPayload)}
		}
		cases = append(cases, protocolCase{s.id, fmt.Sprintf("%q, one frame", s.text), whole(text(s.text)), want})
		var frames [][]byte
		for i := range len(s.text) {
			op := OpContinuation
			if i == 0 {
				op = OpText
			}
			frames = append(frames, clientFrame(i == len(s.text)-1, op, []byte{s.text[i]}))
		}
		if !s.valid {
			// Fail fast: the fragments after the one that makes the
			// text invalid are never sent.
			frames = frames[:invalidAt(s.text)+1]
		}
		if len(frames) > 0 {
			cases = append(cases, protocolCase{s.id + "/frag", fmt.Sprintf("%q, a fragment per byte", s.text), whole(frames...), want})
		}
	}
	return cases
}

// invalidAt is the index of the byte after which s cannot be the start of
// valid UTF-8 (by the reference check), or its last byte when only its end
// is cut short.
func invalidAt(s string) int {
	var u refUTF8
	for i := range len(s) {
		if !u.feed([]byte{s[i]}) {
			return i
		}
	}
	return len(s) - 1
}

func repeatReply(r reply, n int) []reply {
	out := make([]reply, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func TestProtocolSuite(t *testing.T) {
	cases := protocolCases()
	for _, path := range readPaths {
		t.Run(string(path), func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.id, func(t *testing.T) { runProtocolCase(t, path, tc) })
			}
		})
	}
}

func runProtocolCase(t *testing.T, path readPath, tc protocolCase) {
	t.Logf("%s: %s", tc.id, tc.what)
	url, _ := echoServerVia(t, path, protocolLimit)
	want := tc.want
	send := tc.send
	if len(want) == 0 || want[len(want)-1].op != OpClose {
		// A case that does not end the connection: close it normally, in
		// the same write as its last bytes.
		last := append(bytes.Clone(send[len(send)-1]), closeFrame(1000, "")...)
		send = append(send[:len(send)-1:len(send)-1], last)
		want = append(want, closeEcho(1000))
	}
	nc, br := rawDial(t, url, nil)
	for _, b := range send {
		if _, err := nc.Write(b); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	var got []reply
	for len(got) == 0 || got[len(got)-1].op != OpClose {
		op, p, err := readFrame(br)
		if err != nil {
			t.Fatalf("after %s: read: %v, want %s", describe(got), err, describe(want))
		}
		if op == OpClose {
			if len(p) > 2 && !utf8.Valid(p[2:]) {
				t.Errorf("close reason %q is not UTF-8", p[2:])
			}
			p = p[:min(len(p), 2)]
		}
		got = append(got, reply{op: op, payload: p})
	}
	if !sameReplies(got, want) {
		t.Fatalf("got %s, want %s", describe(got), describe(want))
	}
	if want[len(want)-1].fail {
		// The server closed first: answer, and it ends the connection
		// (closing our side for the cases where the frames are lost).
		nc.Write(closeFrame(uint16(binary.BigEndian.Uint16(got[len(got)-1].payload)), ""))
		nc.(*net.TCPConn).CloseWrite()
	}
	if op, p, err := readFrame(br); !closedConn(err) {
		t.Fatalf("after the close handshake: op %d %q, err %v; want the connection closed", op, p, err)
	}
}

func sameReplies(got, want []reply) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].op != want[i].op || !bytes.Equal(got[i].payload, want[i].payload) {
			return false
		}
	}
	return true
}

func describe(rs []reply) string {
	var parts []string
	for _, r := range rs {
		p := string(r.payload)
		if len(p) > 20 {
			p = fmt.Sprintf("%.20s… (%d bytes)", p, len(p))
		}
		if r.op == OpClose && len(r.payload) == 2 {
			p = fmt.Sprint(binary.BigEndian.Uint16(r.payload))
		}
		parts = append(parts, fmt.Sprintf("%d:%q", r.op, p))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// closedConn reports whether a read error means the server closed the
// connection: EOF, or a reset when our answer reached a socket already
// closed (not a timeout: the server must not wait).
func closedConn(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	var oe *net.OpError
	return errors.Is(err, io.EOF) || errors.As(err, &oe)
}
