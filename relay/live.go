package relay

import "time"

// Live is what a running relay takes without a restart (SetLive): its
// limits, the operator's description served in NIP-11 and on the front
// page, and the slow-query threshold. Readers load the whole value
// through one atomic pointer, once per message, so a change takes no lock
// on the hot path and a message is judged by one set of limits, old or
// new, never a mix.
//
// Every limit applies to the next message read, on every connection, with
// two bounds that belong to a connection from its start: its socket's
// read bound (MaxMessageBytes: a message over a lowered limit gets a
// NOTICE, one over a raised limit closes a connection opened before with
// 1009) and its outbound queue (MaxPendingBytes). Connections opened
// afterwards get the new ones.
type Live struct {
	Limits Limits
	// Info's PublicURL and OtherURLs (the names AUTH, NIP-98 and NIP-62
	// events are checked against) and Self (the relay's own key) are
	// fixed at New: SetLive keeps the first ones.
	Info      Info
	SlowQuery time.Duration // log stored queries taking at least this long (0: never)
}

// SetLive replaces the relay's live settings; see Live.
func (r *Relay) SetLive(l Live) {
	first := r.live.Load()
	l.Info.PublicURL, l.Info.OtherURLs, l.Info.Self = first.Info.PublicURL, first.Info.OtherURLs, first.Info.Self
	r.live.Store(&l)
}

// Live returns the settings in force.
func (r *Relay) Live() Live { return *r.live.Load() }

// limits are the limits in force; the pointee is never changed.
func (r *Relay) limits() *Limits { return &r.live.Load().Limits }
