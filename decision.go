package wisp

import (
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// Source says where an event comes from.
type Source uint8

const (
	// SourceClient: a client's EVENT over a websocket.
	SourceClient Source = iota
	// SourceImport: `wisp import` or another local bulk load.
	SourceImport
	// SourceStream: a live feed from another relay (strfry's "Stream").
	SourceStream
	// SourceSync: mirroring or negentropy sync with another relay.
	SourceSync
	// SourceRelay: an event the relay signed and published itself (NIP-29
	// group state, NIP-43 member lists); no rule judges it.
	SourceRelay
)

func (s Source) String() string {
	switch s {
	case SourceClient:
		return "client"
	case SourceImport:
		return "import"
	case SourceStream:
		return "stream"
	case SourceSync:
		return "sync"
	case SourceRelay:
		return "relay"
	}
	return "unknown"
}

// Input is what a write rule sees.
type Input struct {
	Event *nostr.Event
	// Raw is the event's canonical JSON, when the caller has it (plugins
	// get it verbatim; nil means they get json.Marshal(Event)).
	Raw    []byte
	Source Source
	// Remote is the client's IP address for SourceClient, the other relay's
	// URL for SourceStream and SourceSync, and empty for SourceImport.
	Remote string
	// Authed are the pubkeys the connection authenticated as (NIP-42), in
	// the order they did; none before AUTH. A client may authenticate as
	// several pubkeys, and each counts.
	Authed Pubkeys
	// Received is when the relay received the event.
	Received time.Time
	// Vanish marks a NIP-62 request to vanish that names this relay. Such
	// requests must be honoured whoever sends them, so only the rules that
	// protect the relay itself (blocked IPs, rate limits) judge them.
	Vanish bool
	// Membership marks a NIP-43 request to join or leave the relay. A
	// non-member must be able to ask, so, as for Vanish, only the rules
	// that protect the relay itself judge it.
	Membership bool
}

// ReadInput is what a read rule sees: one REQ (or COUNT, or NEG-OPEN).
type ReadInput struct {
	Remote  string
	Authed  Pubkeys
	Filters []nostr.Filter
	Time    time.Time
}

// Pubkeys are the pubkeys a connection authenticated as: few (the relay
// bounds AUTH attempts), in the order they authenticated.
type Pubkeys []string

// Has reports whether pk is one of them.
func (p Pubkeys) Has(pk string) bool {
	for _, q := range p {
		if q == pk {
			return true
		}
	}
	return false
}

// Any reports whether any of them passes ok.
func (p Pubkeys) Any(ok func(pk string) bool) bool {
	for _, q := range p {
		if ok(q) {
			return true
		}
	}
	return false
}

// First is the first pubkey authenticated, or "".
func (p Pubkeys) First() string {
	if len(p) == 0 {
		return ""
	}
	return p[0]
}

// Action is what a rule decided.
type Action uint8

const (
	// Accept lets the event (or the read) through to the next rule.
	Accept Action = iota
	// Reject refuses it with Decision.Reason.
	Reject
	// ShadowReject answers the sender as if the event were stored, but
	// stores and broadcasts nothing.
	ShadowReject
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case ShadowReject:
		return "shadowReject"
	}
	return "unknown"
}

// Decision is a rule's answer. Reason carries a NIP-01 prefix when Action
// is Reject.
type Decision struct {
	Action Action
	Reason string
}

// Accepted is the decision of a rule with nothing against the input.
var Accepted = Decision{}

// Rejected returns a Reject decision with a prefixed reason.
func Rejected(prefix, msg string) Decision {
	return Decision{Action: Reject, Reason: Reason(prefix, msg)}
}
