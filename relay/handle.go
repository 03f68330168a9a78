package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/relay/wsconn"
)

// readLoop reads the client's messages and hands them, in order, to the
// connection's handler through its inbox. It returns when the connection
// ends.
func (c *conn) readLoop() {
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			c.obs.readErr = err
			if errors.Is(err, wsconn.ErrMessageTooBig) {
				c.r.log.Debug("client sent an oversized message", "remote", c.remote)
			}
			return
		}
		c.reads.Add(1)
		if !c.in.put(c.ctx, inMsg{data: data, binary: typ != wsconn.OpText}) {
			return
		}
	}
}

// handleMsg handles one message the reader read, on the inbox's handler
// goroutine, and writes what it queued.
func (c *conn) handleMsg(m inMsg) {
	if m.binary {
		c.notice(wisp.Reason(wisp.PrefixInvalid, "binary messages are not supported"))
	} else {
		c.handle(m.data)
	}
	c.flushInline()
}

func (c *conn) notice(msg string) {
	b, _ := json.Marshal([]string{"NOTICE", msg})
	c.sendWait(frame{body: b})
}

func (c *conn) closed(subID, msg string) {
	c.countClosed(msg)
	b, _ := json.Marshal([]string{"CLOSED", subID, msg})
	c.sendWait(frame{body: b})
}

func (c *conn) ok(id string, ok bool, msg string) {
	if c.obs.verb != "AUTH" {
		c.r.countOK(ok, msg)
	}
	c.sendWait(frame{body: okFrame(id, ok, msg)})
}

func (c *conn) handle(data []byte) {
	if isNegMsg(data) { // NIP-77, see negentropy.go
		c.observeIn("NEG")
		c.handleNeg(data)
		return
	}
	lim := c.r.limits()
	msg, perr := parseClientMsg(data, lim)
	c.observeIn(msg.verb)
	if perr != nil {
		switch {
		case perr.eventID != "":
			c.r.stats.rejected.Add(1)
			c.ok(perr.eventID, false, perr.reason)
		case perr.closed:
			c.closed(perr.subID, perr.reason)
		default:
			c.notice(perr.reason)
		}
		return
	}
	switch msg.verb {
	case "EVENT":
		c.handleEvent(msg.event)
	case "REQ":
		c.handleReq(msg.subID, msg.filters)
	case "CLOSE":
		c.handleClose(msg.subID)
	case "COUNT":
		c.handleCount(msg.subID, msg.filters)
	case "AUTH":
		c.handleAuth(msg.event)
	default:
		c.notice(wisp.Reason(wisp.PrefixInvalid, "unknown message type"))
	}
}

// handleEvent runs the cheap checks, then hands the event to the verify
// pool. The OK is sent by whoever finishes with the event.
func (c *conn) handleEvent(ev *nostr.Event) {
	queued, ok, msg := c.r.admit(ev, arrival{ctx: c.ctx, c: c, source: wisp.SourceClient, remote: c.remote})
	if queued {
		return
	}
	if !ok && wisp.IsReason(msg, wisp.PrefixAuthRequired) {
		c.sendChallenge()
	}
	c.ok(ev.ID, ok, msg)
}

func (c *conn) handleClose(subID string) { c.closeSub(subID) }

// handleReq serves stored events, EOSE, then live events, with no gap and
// no repeat between the two (see sub).
func (c *conn) handleReq(subID string, filters []nostr.Filter) {
	r := c.r
	lim := r.limits()
	c.closeSub(subID) // a REQ with an open id replaces that subscription
	if len(c.subs) >= lim.MaxSubscriptions {
		c.closed(subID, wisp.Reason(wisp.PrefixBlocked, fmt.Sprintf("too many open subscriptions (at most %d)", lim.MaxSubscriptions)))
		return
	}
	for i := range filters {
		f := &filters[i]
		if f.Search != "" && !r.searchEnabled() {
			c.closed(subID, wisp.Reason(wisp.PrefixBlocked, "search (NIP-50) is not supported by this relay"))
			return
		}
		switch {
		case f.LimitZero:
		case f.Limit <= 0:
			f.Limit = lim.DefaultLimit
		case f.Limit > lim.MaxLimit:
			f.Limit = lim.MaxLimit
		}
	}

	if !c.admitReq(subID, filters) {
		return
	}
	visible := c.rawVisible(filters) // nil: every stored match may be sent

	s := newSub(c, subID, filters)
	if c.subBytes+s.cost > lim.MaxSubscriptionBytes {
		c.closed(subID, wisp.Reason(wisp.PrefixBlocked, fmt.Sprintf(
			"the open subscriptions of this connection would hold more than %d bytes; close some or send fewer values", lim.MaxSubscriptionBytes)))
		return
	}
	c.openSub(s)          // before the query: live events park in s.pending
	if !c.sendInvite(s) { // NIP-43, see membership.go
		return
	}

	var watermark int64 // 0: no stored event was sent, every live one goes out
	var err error
	done, asked := newCompleteness(filters) // NIP-67, see eose.go
	if !allLimitZero(filters) {             // limit 0 asks for live events only (NIP-01)
		clock := newWorkClock(c.ctx, lim.QueryTimeout)
		c.queryClock = clock
		watermark, err = c.query(clock, subID, asked, func(raw []byte) error {
			if !done.take(raw) || visible != nil && !visible(raw) {
				return nil
			}
			if !c.sendWait(frame{head: s.head, body: raw, tail: tailBracket}) {
				return errConnClosing
			}
			return nil
		})
		c.queryClock = nil
		clock.release()
	}
	if err != nil {
		c.closeSub(subID)
		if why := c.queryFailure(err, subID, "query"); why != "" {
			c.closed(subID, why)
		}
		return
	}
	if !c.sendWait(frame{body: eoseFrame(subID, done.hint())}) {
		return
	}
	s.goLive(c.sendWait, watermark)
}

var errConnClosing = errors.New("connection closing")

// allLimitZero reports whether every filter asks for no stored events.
func allLimitZero(filters []nostr.Filter) bool {
	for i := range filters {
		if !filters[i].LimitZero {
			return false
		}
	}
	return true
}

// queryFailure turns the error of a stored query (REQ, COUNT, NIP-77 listing)
// into the reason to answer with, or "" when the connection is going away
// and nothing should be sent. what names the work in the answer and the log.
func (c *conn) queryFailure(err error, subID, what string) string {
	switch {
	case errors.Is(err, errConnClosing) || c.ctx.Err() != nil:
		return ""
	case errors.Is(err, context.DeadlineExceeded):
		return wisp.Reason(wisp.PrefixError, what+" took too long; narrow the filter")
	default:
		c.r.log.Error(what, "sub", subID, "err", err)
		return wisp.InternalError
	}
}
