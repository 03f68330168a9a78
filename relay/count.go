package relay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/storage"
)

// NIP-45 COUNT: ["COUNT", <id>, <filter>...] is answered with
// ["COUNT", <id>, {"count": n}], counted by the store from its indexes,
// with "approximate": true when the store stopped at its cap and, for a
// single filter on one tag with kinds (reactions, reposts, replies,
// followers...), the NIP's HyperLogLog registers as "hll". A COUNT the
// relay will not serve gets CLOSED with a prefixed reason. Limits are
// ignored: COUNT counts everything that matches.

type countResult struct {
	Count       int64  `json:"count"`
	Approximate bool   `json:"approximate,omitempty"`
	HLL         string `json:"hll,omitempty"`
}

func (c *conn) handleCount(subID string, filters []nostr.Filter) {
	r := c.r
	for i := range filters {
		f := &filters[i]
		if f.Search != "" && !r.searchEnabled() {
			c.closed(subID, wisp.Reason(wisp.PrefixBlocked, "search (NIP-50) is not supported by this relay"))
			return
		}
		for _, k := range f.Kinds {
			if isPrivateKind(k) {
				c.closed(subID, wisp.Reason(wisp.PrefixRestricted, "private messages are not counted"))
				return
			}
		}
	}
	if !c.admitReq(subID, filters) {
		return
	}

	ctx, cancel := context.WithTimeout(c.ctx, r.limits().QueryTimeout)
	start := time.Now()
	res, err := r.count(ctx, filters, c.auth.pubkeys())
	cancel()
	c.observeQuery(QueryCount, subID, filters, time.Since(start), err, int(res.Count))
	if err != nil {
		if why := c.queryFailure(err, subID, "count"); why != "" {
			c.closed(subID, why)
		}
		return
	}
	body, _ := json.Marshal(res) // numbers, a bool and hex: cannot fail
	idJSON, _ := json.Marshal(subID)
	b := make([]byte, 0, 16+len(idJSON)+len(body))
	b = append(b, `["COUNT",`...)
	b = append(b, idJSON...)
	b = append(b, ',')
	b = append(b, body...)
	b = append(b, ']')
	c.sendWait(frame{body: b})
}

// count asks the store. Private messages are never counted: a filter
// without kinds would match them too, so their count is taken out; so is
// the count of what the ReadGuard hides from viewers (then no HyperLogLog:
// its registers cannot be taken apart).
func (r *Relay) count(ctx context.Context, filters []nostr.Filter, viewers wisp.Pubkeys) (countResult, error) {
	var hidden []nostr.Filter
	if r.cfg.Groups != nil {
		hidden = r.cfg.Groups.Hidden(filters, viewers)
	}
	if off := hllOffset(filters); off >= 0 && hidden == nil {
		if hc, ok := r.store.(storage.HLLCounter); ok {
			n, approx, hll, err := hc.CountHLL(ctx, filters, off)
			if err != nil {
				return countResult{}, err
			}
			res := countResult{Count: n, Approximate: approx}
			if hll != nil {
				res.HLL = hex.EncodeToString(hll)
			}
			return res, nil
		}
	}
	n, approx, err := r.store.Count(ctx, filters)
	if err != nil {
		return countResult{}, err
	}
	var private []nostr.Filter
	for _, f := range filters {
		if f.Kinds == nil {
			f.Kinds = []int{nostr.KindEncryptedDirectMessage, nostr.KindGiftWrap}
			private = append(private, f)
		}
	}
	if len(private) > 0 && n > 0 {
		p, papprox, err := r.store.Count(ctx, private)
		if err != nil {
			return countResult{}, err
		}
		n, approx = max(n-p, 0), approx || papprox
	}
	if len(hidden) > 0 && n > 0 {
		h, happrox, err := r.store.Count(ctx, hidden)
		if err != nil {
			return countResult{}, err
		}
		n, approx = max(n-h, 0), approx || happrox
	}
	return countResult{Count: n, Approximate: approx}, nil
}

// hllOffset returns NIP-45's offset for a COUNT that gets HyperLogLog
// registers, or -1. wisp returns them for the shape of the NIP's common
// filters: one filter, with kinds, and exactly one tag attribute with one
// value (the reaction, repost, quote, reply, comment and follower counts);
// other fields may narrow it. The offset comes from that value: a 64-hex id
// or pubkey as it is, an address's pubkey, anything else hashed with
// sha256; its 33rd hex digit, plus 8.
func hllOffset(filters []nostr.Filter) int {
	if len(filters) != 1 {
		return -1
	}
	f := &filters[0]
	if len(f.Kinds) == 0 || f.Search != "" || len(f.Tags) != 1 {
		return -1
	}
	var value string
	for name, values := range f.Tags {
		if len(name) != 1 || len(values) != 1 {
			return -1
		}
		value = values[0]
	}
	hex64 := value
	if !isLowerHex(hex64, 64) {
		if kind, rest, ok := strings.Cut(value, ":"); ok {
			if _, err := strconv.Atoi(kind); err == nil {
				pk, _, _ := strings.Cut(rest, ":")
				hex64 = pk
			}
		}
	}
	if !isLowerHex(hex64, 64) {
		sum := sha256.Sum256([]byte(value))
		hex64 = hex.EncodeToString(sum[:])
	}
	d, err := strconv.ParseUint(hex64[32:33], 16, 8)
	if err != nil {
		return -1
	}
	return int(d) + 8
}
