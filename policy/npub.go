package policy

import (
	"encoding/hex"
	"strings"
)

// decodeNpub decodes a NIP-19 npub (bech32, BIP-173) into 64 hex digits.
// It is the one bech32 string wisp reads, so it is decoded here rather than
// through another module.
func decodeNpub(s string) (string, bool) {
	if strings.ToLower(s) != s && strings.ToUpper(s) != s {
		return "", false // mixed case is invalid bech32
	}
	s = strings.ToLower(s)
	const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	hrp, data, ok := strings.Cut(s, "1")
	if !ok || hrp != "npub" || len(data) < 6 {
		return "", false
	}
	values := make([]byte, len(data))
	for i := 0; i < len(data); i++ {
		v := strings.IndexByte(charset, data[i])
		if v < 0 {
			return "", false
		}
		values[i] = byte(v)
	}
	if bech32Polymod(append(hrpExpand(hrp), values...)) != 1 {
		return "", false
	}
	// Regroup the 5-bit words (without the 6-word checksum) into bytes.
	var out []byte
	acc, bits := 0, 0
	for _, v := range values[:len(values)-6] {
		acc = acc<<5 | int(v)
		bits += 5
		for bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
		acc &= 1<<bits - 1
	}
	if bits >= 5 || acc != 0 || len(out) != 32 {
		return "", false
	}
	return hex.EncodeToString(out), true
}

func hrpExpand(hrp string) []byte {
	out := make([]byte, 0, 2*len(hrp)+1)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]>>5)
	}
	out = append(out, 0)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]&31)
	}
	return out
}

func bech32Polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range 5 {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}
