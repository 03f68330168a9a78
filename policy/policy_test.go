package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

func TestParseRate(t *testing.T) {
	good := map[string]Rate{
		"":       {},
		"0":      {},
		"0/1m":   {},
		"20/1m":  {N: 20, Per: time.Minute},
		"5/s":    {N: 5, Per: time.Second},
		" 3/h ":  {N: 3, Per: time.Hour},
		"10/30s": {N: 10, Per: 30 * time.Second},
	}
	for in, want := range good {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"20", "x/1m", "-1/1m", "5/0s", "5/-1s", "5/fortnight"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
}

func TestLimiterRefills(t *testing.T) {
	l := newLimiter(Rate{N: 2, Per: time.Second})
	t0 := time.Unix(1000, 0)
	if !l.allow("a", t0) || !l.allow("a", t0) || l.allow("a", t0) {
		t.Fatal("burst of 2 not enforced")
	}
	if !l.allow("b", t0) {
		t.Fatal("keys share a bucket")
	}
	if l.allow("a", t0.Add(400*time.Millisecond)) {
		t.Fatal("refilled too fast")
	}
	if !l.allow("a", t0.Add(600*time.Millisecond)) {
		t.Fatal("did not refill one token in half a period")
	}
	// Full buckets are forgotten.
	l.allow("c", t0.Add(10*time.Second))
	if _, ok := l.buckets["b"]; ok {
		t.Fatal("full bucket kept")
	}
	if newLimiter(Rate{}) != nil || !(*limiter)(nil).allow("x", t0) {
		t.Fatal("zero rate limits")
	}
}

func TestParseKinds(t *testing.T) {
	s, err := ParseKinds(" 0, 1,3 ,30000-39999,")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[int]bool{0: true, 1: true, 2: false, 3: true, 29999: false, 30000: true, 35000: true, 39999: true, 40000: false} {
		if s.has(k) != want {
			t.Errorf("has(%d) = %v", k, !want)
		}
	}
	if s.String() != "0,1,3,30000-39999" {
		t.Errorf("String() = %q", s.String())
	}
	for _, bad := range []string{"x", "5-1", "-1", "70000", "1-"} {
		if _, err := ParseKinds(bad); err == nil {
			t.Errorf("ParseKinds(%q) accepted", bad)
		}
	}
}

func TestParsePubkeys(t *testing.T) {
	// NIP-19's example.
	const npub = "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"
	const hex = "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"
	got, err := ParsePubkeys(npub + ", " + strings.ToUpper(hex))
	if err != nil || len(got) != 2 || got[0] != hex || got[1] != hex {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"abc", npub[:len(npub)-1] + "q", "npub1", "nsec10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"} {
		if _, err := ParsePubkey(bad); err == nil {
			t.Errorf("ParsePubkey(%q) accepted", bad)
		}
	}
}

func TestLeadingZeroBits(t *testing.T) {
	for id, want := range map[string]int{
		"000000000e9d97a1ab09fc381030b346cdd7a142ad57e6df0b46dc9bef6c7e2d": 36,
		"000006d8c378af1779d2feebc7603a125d99eca0ccf1085959b307f64e5dd358": 21,
		"f000000000000000000000000000000000000000000000000000000000000000": 0,
		"1000000000000000000000000000000000000000000000000000000000000000": 3,
	} {
		if got := leadingZeroBits(id); got != want {
			t.Errorf("%s: %d, want %d", id, got, want)
		}
	}
}

func TestChainFailsClosed(t *testing.T) {
	var c Chain
	calls := 0
	c.Add("counts", RuleFunc(func(context.Context, *wisp.Input) wisp.Decision { calls++; return wisp.Accepted }))
	c.Add("panics", RuleFunc(func(context.Context, *wisp.Input) wisp.Decision { panic("boom") }))
	c.Add("never", RuleFunc(func(context.Context, *wisp.Input) wisp.Decision { t.Fatal("ran after a failure"); return wisp.Accepted }))
	d := c.Check(context.Background(), &wisp.Input{Event: &nostr.Event{}})
	if d.Action != wisp.Reject || d.Reason != "error: internal error" || calls != 1 {
		t.Fatalf("decision %+v after %d calls", d, calls)
	}

	var c2 Chain
	c2.Add("bare", RuleFunc(func(context.Context, *wisp.Input) wisp.Decision {
		return wisp.Decision{Action: wisp.Reject, Reason: "no"}
	}))
	if d := c2.Check(context.Background(), &wisp.Input{Event: &nostr.Event{}}); d.Reason != "blocked: no" {
		t.Fatalf("unprefixed reason became %q", d.Reason)
	}
}

func TestVanishSkipsAllButGuards(t *testing.T) {
	p, err := New(Config{Auth: wisp.AuthWrite, MinPoW: 20}, NewLists(nil, []string{"ab"}, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	in := &wisp.Input{Event: &nostr.Event{PubKey: "ab", Kind: 62, ID: "ff"}, Remote: "192.0.2.1", Vanish: true}
	if d := p.Check(context.Background(), in); d.Action != wisp.Accept {
		t.Fatalf("request to vanish: %+v", d)
	}
	p.Lists().put(ListBlockedIPs, "192.0.2.1", "")
	if d := p.Check(context.Background(), in); d.Action != wisp.Reject {
		t.Fatal("blocked IP let through a request to vanish")
	}
}

func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"::ffff:192.0.2.1":     "::ffff:192.0.2.1",
		"not an address":       "not an address",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
}
