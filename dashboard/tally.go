package dashboard

import (
	"strconv"

	"github.com/wisp-relay/wisp/relay"
)

const (
	// busiestKept is how many keys each window of the busiest lists
	// counts: a key sending more than 1/busiestKept of a window's events
	// is certain to be among them; the page shows the first busiestShown.
	busiestKept  = 128
	busiestShown = 10
)

// Tally counts who sends events and what kinds are stored, in fixed
// memory (see topK), for the busiest authors and IPs and the kinds of
// the dashboard. It implements relay.Senders; Stored goes to
// Relay.OnStored. Its windows move on with the Dashboard's sampler.
type Tally struct {
	ips     *recent // nil: addresses are not counted (WISP_LOG_IPS=off)
	authors *recent
	kinds   *recent
}

var _ relay.Senders = (*Tally)(nil)

// NewTally returns a Tally; countIPs false leaves addresses out
// altogether, as the log does with WISP_LOG_IPS=off.
func NewTally(countIPs bool) *Tally {
	t := &Tally{authors: newRecent(busiestKept), kinds: newRecent(busiestKept)}
	if countIPs {
		t.ips = newRecent(busiestKept)
	}
	return t
}

// EventFrom implements relay.Senders.
func (t *Tally) EventFrom(ip string) {
	if t.ips != nil {
		t.ips.add(ip)
	}
}

// EventBy implements relay.Senders.
func (t *Tally) EventBy(pubkey string) { t.authors.add(pubkey) }

// Stored counts a stored event's kind; pass it to Relay.OnStored. It runs
// on the writer and returns at once.
func (t *Tally) Stored(ev relay.StoredEvent) { t.kinds.add(strconv.Itoa(ev.Event.Kind)) }

func (t *Tally) rotate() {
	if t.ips != nil {
		t.ips.rotate()
	}
	t.authors.rotate()
	t.kinds.rotate()
}
