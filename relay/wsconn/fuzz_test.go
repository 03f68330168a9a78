package wsconn

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"testing"
)

// FuzzReader feeds arbitrary bytes, as a client would send them after the
// handshake, to the real reader over a real loopback TCP connection and to
// refDecode, and requires the same messages, pings, pongs and end (close
// code and reason, failure code, or end of stream).
//
// The arguments besides the stream: how many of its first bytes arrive
// with the handshake (the HTTP server's buffered bytes, Conn.pre), the
// read limit (0: none), and whether the connection takes the portable read
// path.
func FuzzReader(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed, uint16(0), uint16(0), false)
		f.Add(seed, uint16(3), uint16(100), true)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	var bufs bufPool
	f.Fuzz(func(t *testing.T, stream []byte, pre, limit uint16, portable bool) {
		readLimit := math.MaxInt
		if limit > 0 {
			readLimit = int(limit)
		}
		want := refDecode(stream, uint64(readLimit))

		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		// Closed with a reset, both ends: a million connections in
		// TIME_WAIT would use up the loopback ports.
		client.(*net.TCPConn).SetLinger(0)
		server.(*net.TCPConn).SetLinger(0)
		split := min(int(pre), len(stream))
		written := make(chan struct{})
		go func() {
			defer close(written)
			client.Write(stream[split:])
			client.(*net.TCPConn).CloseWrite()
		}()
		if portable {
			server = portableConn{server}
		}
		c := newConn(server, bytes.Clone(stream[:split]), readLimit, &bufs)
		got := readEvents(t, c)
		server.Close() // a writer blocked on a full socket returns
		<-written
		if eventsString(got) != eventsString(want) {
			t.Fatalf("stream %x (pre %d, limit %d)\nreader:    %s\nreference: %s", stream, split, limit, eventsString(got), eventsString(want))
		}
	})
}

// readEvents reads c to its end, as refDecode reports it.
func readEvents(t *testing.T, c *Conn) []refEvent {
	var out []refEvent
	c.OnControl = func(op Opcode, p []byte) {
		kind := "ping"
		if op == OpPong {
			kind = "pong"
		}
		out = append(out, refEvent{kind: kind, data: string(p)})
	}
	for {
		op, p, err := c.ReadMessage()
		var ce *CloseError
		var pe *ProtocolError
		switch {
		case err == nil:
			out = append(out, refEvent{kind: "message", op: op, data: string(p)})
			continue
		case errors.As(err, &ce):
			return append(out, refEvent{kind: "close", code: ce.Code, data: ce.Reason})
		case errors.As(err, &pe):
			return append(out, refEvent{kind: "fail", code: pe.Code})
		case errors.Is(err, io.EOF):
			return append(out, refEvent{kind: "eof"})
		}
		t.Fatalf("read: %v", err)
	}
}

// fuzzSeeds are streams that reach each rule: the protocol suite's cases
// and a few of its own.
func fuzzSeeds() [][]byte {
	seeds := [][]byte{
		nil,
		{0x81},
		{0x81, 0x80 | 126, 0, 5, 1, 2, 3, 4},
		{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 0},
		append(frag(OpText, "κ\xcf"), fin(OpContinuation, "\x8cσμε")...),
		append(frag(OpText, "a"), ping("p")...),
		{0x88, 0x80 | 4, 0, 0, 0, 0, 0x03, 0xe8, 'o', 'k'}, // a zero key: the payload as is
	}
	for _, tc := range protocolCases() {
		if b := bytes.Join(tc.send, nil); len(b) <= 4096 {
			seeds = append(seeds, b)
		}
	}
	return seeds
}

// Boundaries the fuzzer is unlikely to hit by chance, checked against the
// reference exhaustively.

func TestCloseCodesAgainstReference(t *testing.T) {
	for code := range 1 << 16 {
		err := closeErrorOf([]byte{byte(code >> 8), byte(code)})
		var ce *CloseError
		if got, want := errors.As(err, &ce), refCloseCodeOK(uint16(code)); got != want {
			t.Errorf("close code %d: accepted %v, reference %v", code, got, want)
		}
	}
}

func TestUTF8PrefixAgainstReference(t *testing.T) {
	check := func(p []byte) {
		var ref refUTF8
		wantOK := ref.feed(p)
		whole, ok := utf8Prefix(p)
		if ok != wantOK || ok && (whole == len(p)) != ref.complete() {
			t.Fatalf("% x: utf8Prefix %d, %v; reference ok %v, complete %v", p, whole, ok, wantOK, ref.complete())
		}
	}
	// Every string of up to three bytes.
	p := make([]byte, 3)
	for i := range 1 << 24 {
		p[0], p[1], p[2] = byte(i>>16), byte(i>>8), byte(i)
		check(p)
		if i < 1<<16 {
			check(p[1:])
			if i < 1<<8 {
				check(p[2:])
			}
		}
	}
	// Strings of four and five bytes made of the bytes where the ranges
	// of RFC 3629 begin and end.
	edges := []byte{0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf,
		0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff}
	var walk func(p []byte)
	walk = func(p []byte) {
		if len(p) >= 4 {
			check(p)
		}
		if len(p) == 5 {
			return
		}
		for _, b := range edges {
			walk(append(p, b))
		}
	}
	walk(nil)
}
