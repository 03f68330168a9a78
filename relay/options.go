package relay

import "time"

// Limits are the limits the relay enforces and advertises in NIP-11.
type Limits struct {
	MaxMessageBytes  int // largest websocket message accepted from a client
	MaxEventBytes    int // largest event, as canonical JSON
	MaxEventTags     int // most tags in one event
	MaxTagValueBytes int // longest single tag element (bytes)
	MaxContentLength int // longest content (unicode characters, as NIP-11 counts it)
	MaxSubscriptions int // open subscriptions per connection
	// MaxSubscriptionBytes bounds what the open subscriptions of one
	// connection hold: their filters and fan-out index entries (budget.go).
	MaxSubscriptionBytes int
	MaxFilters           int           // filters per REQ
	MaxFilterValues      int           // values in one filter list (ids, authors, kinds, each #tag)
	MaxLimit             int           // cap on a filter's limit
	DefaultLimit         int           // limit used when a filter has none
	MaxSubIDLength       int           // subscription id length (NIP-01: 64)
	CreatedAtFuture      time.Duration // how far in the future created_at may be
	CreatedAtPast        time.Duration // how far in the past created_at may be (0: no bound)
	MaxPendingBytes      int           // outbound bytes queued per connection before it is closed
	QueryTimeout         time.Duration // time one REQ's stored query may work, not counting waits on the client (workclock.go)
}

// DefaultLimits are the defaults documented in README and config.example.env.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes:      512 * 1024,
		MaxEventBytes:        256 * 1024,
		MaxEventTags:         2000,
		MaxTagValueBytes:     8 * 1024,
		MaxContentLength:     128 * 1024,
		MaxSubscriptions:     50,
		MaxSubscriptionBytes: 2 << 20,
		MaxFilters:           10,
		MaxFilterValues:      500,
		MaxLimit:             5000,
		DefaultLimit:         500,
		MaxSubIDLength:       64,
		CreatedAtFuture:      15 * time.Minute,
		CreatedAtPast:        0,
		MaxPendingBytes:      4 << 20,
		QueryTimeout:         10 * time.Second,
	}
}

// Info is the operator-facing description served in NIP-11 and on the front page.
type Info struct {
	Name        string
	Description string
	PubKey      string
	Contact     string
	Icon        string
	// PublicURL is the ws:// or wss:// URL clients should use. It and
	// OtherURLs name this relay in AUTH (NIP-42), NIP-98 and NIP-62 relay
	// tags; with neither set only loopback names do (identity.go). Empty,
	// the front page and NIP-11 show a URL derived from the request.
	PublicURL string
	// OtherURLs are further URLs this relay is reached at (another host
	// name, an onion address).
	OtherURLs []string
	// Self is the pubkey of the relay's own key (NIP-11 "self"), which
	// signs the events the relay publishes itself (NIP-29 group state,
	// NIP-43 member lists); "" when it has none. Events of this pubkey
	// from anywhere but the relay itself (and an operator's import) are
	// refused, so that none it signed can be replayed to it.
	Self string
}
