package relay

import "github.com/nbd-wtf/go-nostr"

// What one connection can make the relay hold, and where each is bounded:
//
//   - messages read and not yet handled: maxInbox, maxInboxBytes (handle.go);
//   - frames queued for the client: Limits.MaxPendingBytes (conn.go), which
//     also bounds live events parked during a stored query (subs.go);
//   - a stored query's results: one page of the store's (storage.Store
//     Query reads in pages, sqlite.Options.PageBytes), handed to the
//     outbound queue as they are sent;
//   - open subscriptions: Limits.MaxSubscriptions, and their filters and
//     fan-out index entries together Limits.MaxSubscriptionBytes (here);
//   - NIP-77 sessions: maxNegSessions, and their id lists together
//     NegentropyConfig.MaxEvents (negentropy.go).
//
// Per IP that is times the connections an IP may open (the policy's
// MaxConnsPerIP).

// Estimated bytes held per subscription, per filter and per filter value
// besides the value's own bytes: the string header in the filter, its slot
// in the fan-out index (63 B, BenchmarkSubIndexBytesPerValue) rounded up.
const (
	subOverhead    = 512
	filterOverhead = 256
	valueOverhead  = 96
)

// subCost estimates what a subscription with these filters holds while it
// is open: its filters as parsed and its entries in the fan-out index.
func subCost(id string, filters []nostr.Filter) int {
	n := subOverhead + 2*len(id)
	for i := range filters {
		f := &filters[i]
		n += filterOverhead + len(f.Search)
		for _, v := range f.IDs {
			n += len(v) + valueOverhead
		}
		for _, v := range f.Authors {
			n += len(v) + valueOverhead
		}
		n += len(f.Kinds) * valueOverhead
		for name, vs := range f.Tags {
			n += len(name) + valueOverhead
			for _, v := range vs {
				n += len(v) + valueOverhead
			}
		}
	}
	return n
}

// openSub files s: in the connection's subscriptions, the fan-out index
// and the connection's budget. Handler goroutine only.
func (c *conn) openSub(s *sub) {
	c.subs[s.id] = s
	c.subBytes += s.cost
	c.r.index.add(s)
}

// closeSub closes the subscription id, if open. Handler goroutine only.
func (c *conn) closeSub(id string) {
	s, ok := c.subs[id]
	if !ok {
		return
	}
	delete(c.subs, id)
	c.subBytes -= s.cost
	c.r.index.remove(s)
	s.close()
}
