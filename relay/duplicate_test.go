package relay_test

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/nbd-wtf/go-nostr"
)

// A stored event sent again with a corrupted signature is refused as a bad
// signature, not answered duplicate: its id commits to the content but not
// to the signature. Another valid signature of it is a duplicate.
func TestDuplicateWithOtherSignature(t *testing.T) {
	tr := startRelay(t)
	c := dial(t, tr.url)
	k := newKey(t)
	ev := k.sign(t, 1, now(), "signed once")
	c.mustPublish(ev)

	corrupted := *ev
	sig := []byte(ev.Sig)
	if sig[70] == '0' {
		sig[70] = '1'
	} else {
		sig[70] = '0'
	}
	corrupted.Sig = string(sig)
	if res := c.publish(&corrupted); res.ok || res.msg != "invalid: bad signature" {
		t.Errorf("stored event with a corrupted signature: %+v, want OK false invalid: bad signature", res)
	}

	resigned := *ev
	resigned.Sig = signWithAux(t, k.sk, ev.ID, [32]byte{7})
	if resigned.Sig == ev.Sig {
		t.Fatal("the second signature is the first")
	}
	if ok, err := resigned.CheckSignature(); !ok || err != nil {
		t.Fatalf("second signature does not verify: %v", err)
	}
	if res := c.publish(&resigned); !res.ok || !strings.HasPrefix(res.msg, "duplicate:") {
		t.Errorf("stored event with another valid signature: %+v, want OK true duplicate:", res)
	}
	if res := c.publish(ev); !res.ok || !strings.HasPrefix(res.msg, "duplicate:") {
		t.Errorf("stored event sent again: %+v, want OK true duplicate:", res)
	}
	got := c.query("s", nostr.Filter{IDs: []string{ev.ID}})
	if len(got) != 1 || got[0].Sig != ev.Sig {
		t.Fatalf("stored: %+v, want the first version once", got)
	}
}

// signWithAux makes a BIP-340 signature of the event id with other
// auxiliary randomness than go-nostr's, so another valid signature.
func signWithAux(t *testing.T, skHex, id string, aux [32]byte) string {
	t.Helper()
	skb, err := hex.DecodeString(skHex)
	if err != nil {
		t.Fatal(err)
	}
	idb, err := hex.DecodeString(id)
	if err != nil {
		t.Fatal(err)
	}
	sk, _ := btcec.PrivKeyFromBytes(skb)
	s, err := schnorr.Sign(sk, idb, schnorr.CustomNonce(aux))
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(s.Serialize())
}
