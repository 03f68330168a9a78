package relay

import (
	"errors"
	"fmt"
)

// checkNegMessage walks a client's negentropy message (NIP-77, decoded
// from hex) before go-nostr's reconciler reads it: the reconciler sizes a
// map by the id count a message declares, so a message of a few bytes
// declaring a billion ids would have the relay allocate gigabytes. This
// accepts a message only if every count fits in the bytes that follow.
//
// The format: a protocol version byte, then ranges, each an upper bound
// (timestamp varint, id prefix length varint, the prefix), a mode varint
// and its payload: nothing (skip), a 16-byte fingerprint, or an id count
// and that many 32-byte ids.
func checkNegMessage(msg []byte) error {
	if len(msg) == 0 {
		return errors.New("empty message")
	}
	r := negReader{b: msg[1:]} // a version the relay does not speak is answered by the library
	for len(r.b) > 0 {
		if _, err := r.varint(); err != nil { // timestamp
			return err
		}
		n, err := r.varint()
		if err != nil {
			return err
		}
		if n > 32 {
			return fmt.Errorf("bound id prefix of %d bytes", n)
		}
		if err := r.skip(n); err != nil {
			return err
		}
		mode, err := r.varint()
		if err != nil {
			return err
		}
		switch mode {
		case 0: // skip
		case 1: // fingerprint
			if err := r.skip(16); err != nil {
				return err
			}
		case 2: // id list
			ids, err := r.varint()
			if err != nil {
				return err
			}
			if ids > uint64(len(r.b))/32 {
				return fmt.Errorf("id list of %d ids in %d bytes", ids, len(r.b))
			}
			if err := r.skip(ids * 32); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown mode %d", mode)
		}
	}
	return nil
}

type negReader struct{ b []byte }

var errNegShort = errors.New("message ends early")

// varint reads negentropy's varint: base 128, most significant group
// first, the high bit set on every byte but the last.
func (r *negReader) varint() (uint64, error) {
	var v uint64
	for i := 0; ; i++ {
		if len(r.b) == 0 {
			return 0, errNegShort
		}
		if i == 9 {
			return 0, errors.New("varint too long")
		}
		c := r.b[0]
		r.b = r.b[1:]
		v = v<<7 | uint64(c&0x7f)
		if c&0x80 == 0 {
			return v, nil
		}
	}
}

func (r *negReader) skip(n uint64) error {
	if n > uint64(len(r.b)) {
		return errNegShort
	}
	r.b = r.b[n:]
	return nil
}
