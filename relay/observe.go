package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/relay/wsconn"
)

// Metrics receives the relay's measurements as they happen. The relay
// itself depends on no metrics library: cmd/wisp plugs in a Prometheus
// implementation (package metrics). Calls come from many goroutines, some
// for every message, so an implementation must be safe for concurrent use
// and cheap. Figures the relay keeps anyway (open connections and
// subscriptions, slow-consumer evictions) are read from Stats instead.
type Metrics interface {
	// MessageIn counts a message from a client by verb: EVENT, REQ, CLOSE,
	// COUNT, AUTH, NEG (any NIP-77 message), or "invalid" for one that could
	// not be parsed.
	MessageIn(verb string)
	// MessageOut counts a message written to a client by verb: EVENT, OK,
	// EOSE, CLOSED, NOTICE, COUNT, AUTH, NEG-MSG or NEG-ERR.
	MessageOut(verb string)
	// Event counts what became of an EVENT: OutcomeStored, OutcomeEphemeral
	// (accepted and broadcast, never stored), OutcomeDuplicate, or
	// OutcomeRejected with the NIP-01 prefix of the reason (invalid,
	// blocked, error, ...).
	Event(outcome, prefix string)
	// WriteBatch records one write transaction: how many events it held and
	// how long Save took, commit included; err is Save's.
	WriteBatch(events int, took time.Duration, err error)
	// Query records one stored query: kind QueryReq or QueryCount, outcome
	// QueryOK, QueryTimeout, QueryCanceled or QueryError, and its duration.
	Query(kind, outcome string, took time.Duration)
	// Refused counts a request the relay turned down, or a subscription it
	// closed, other than an EVENT (which Event counts): what is RefusedREQ,
	// RefusedCOUNT or RefusedNeg (a CLOSED or NEG-ERR answer), or
	// RefusedConnection (an HTTP refusal of a new websocket), and prefix is
	// the NIP-01 prefix of the reason.
	Refused(what, prefix string)
}

// Senders is told who sends events, for the operator's lists of the
// busiest authors and IPs (package dashboard). Its calls are on the hot
// path of every EVENT, from many goroutines: an implementation must be
// cheap, safe for concurrent use, and hold a bounded amount whatever
// clients send.
type Senders interface {
	// EventFrom counts an EVENT message from a client at ip, whatever
	// became of it (malformed ones too).
	EventFrom(ip string)
	// EventBy counts a client's event whose signature checked out, by its
	// author. Duplicates carrying the stored signature are not checked
	// again (see admit), so they are not counted.
	EventBy(pubkey string)
}

// Event outcomes for Metrics.Event.
const (
	OutcomeStored    = "stored"
	OutcomeEphemeral = "ephemeral"
	OutcomeDuplicate = "duplicate"
	OutcomeRejected  = "rejected"
)

// Query kinds and outcomes for Metrics.Query.
const (
	QueryReq      = "req"
	QueryCount    = "count"
	QueryOK       = "ok"
	QueryTimeout  = "timeout"
	QueryCanceled = "canceled"
	QueryError    = "error"
)

// What Metrics.Refused counts.
const (
	RefusedREQ        = "REQ"
	RefusedCOUNT      = "COUNT"
	RefusedNeg        = "NEG"
	RefusedConnection = "connection"
)

type noMetrics struct{}

func (noMetrics) MessageIn(string)                     {}
func (noMetrics) MessageOut(string)                    {}
func (noMetrics) Event(string, string)                 {}
func (noMetrics) WriteBatch(int, time.Duration, error) {}
func (noMetrics) Query(string, string, time.Duration)  {}
func (noMetrics) Refused(string, string)               {}

// metrics returns the configured Metrics, or one that discards.
func (r *Relay) metrics() Metrics {
	if r.cfg.Metrics == nil {
		return noMetrics{}
	}
	return r.cfg.Metrics
}

// countOK counts the outcome an OK reports: duplicates and refusals (by
// prefix). Stored and ephemeral events are counted by the writer, which
// knows which they are; an OK true without a message may also be a
// shadow rejection, which is not counted as stored.
func (r *Relay) countOK(ok bool, msg string) {
	switch {
	case !ok:
		r.metrics().Event(OutcomeRejected, reasonPrefix(msg))
	case wisp.IsReason(msg, wisp.PrefixDuplicate):
		r.metrics().Event(OutcomeDuplicate, "")
	}
}

// countClosed counts a CLOSED answer to the REQ or COUNT being handled.
func (c *conn) countClosed(msg string) {
	what := RefusedREQ
	if c.obs.verb == "COUNT" {
		what = RefusedCOUNT
	}
	c.r.metrics().Refused(what, reasonPrefix(msg))
}

// knownPrefixes bounds the label values of refusals.
var knownPrefixes = []string{wisp.PrefixInvalid, wisp.PrefixDuplicate, wisp.PrefixBlocked, wisp.PrefixRateLimited,
	wisp.PrefixRestricted, wisp.PrefixAuthRequired, wisp.PrefixPoW, wisp.PrefixError}

// reasonPrefix returns the NIP-01 prefix of a reason, "other" for none.
func reasonPrefix(msg string) string {
	p, _, ok := strings.Cut(msg, ":")
	if ok {
		for _, k := range knownPrefixes {
			if p == k {
				return k
			}
		}
	}
	return "other"
}

// frameVerb is the verb of an outbound frame: EVENT frames share a head,
// the others start with ["VERB".
// outVerbs are the verbs a relay sends, the label values of sent messages.
var outVerbs = [...]string{"EVENT", "OK", "EOSE", "CLOSED", "NOTICE", "COUNT", "AUTH", "NEG-MSG", "NEG-ERR"}

func frameVerb(f frame) string {
	b := f.head
	if len(b) == 0 {
		b = f.body
	}
	if !bytes.HasPrefix(b, []byte(`["`)) {
		return "other"
	}
	b = b[2:]
	if i := bytes.IndexByte(b, '"'); i > 0 && i <= 8 {
		// Return the constant, not string(b[:i]): this runs once per frame
		// sent, and the conversion would allocate each time.
		for _, v := range outVerbs {
			if string(b[:i]) == v {
				return v
			}
		}
	}
	return "other"
}

// connObs is what a connection records for operators: counts for its
// closing log line and the error that ended its reader.
type connObs struct {
	opened  time.Time
	verb    string // verb of the message being handled; reader only
	in      int64  // messages read; reader only
	out     int64  // messages written; writer only
	readErr error  // what ended the reader
}

// logOpened writes the line for a new connection.
func (c *conn) logOpened(open int64) {
	c.obs.opened = time.Now()
	c.r.log.Info("connection opened", "remote", c.remote, "open", open)
}

// logClosed writes the line for a connection that ended, with why. Call
// it after the writer has finished.
func (c *conn) logClosed(why string) {
	attrs := []any{"remote", c.remote, "reason", why,
		"duration", time.Since(c.obs.opened).Round(time.Millisecond),
		"in", c.obs.in, "out", c.obs.out}
	dropped := c.in.droppedAfterClose()
	if dropped > 0 {
		// Sent by the client before it saw the relay's close frame: read
		// only to find the client's close, and never answered.
		attrs = append(attrs, "after_close", dropped)
	}
	c.r.log.Info("connection closed", attrs...)
}

// endReason says why the reader stopped: a close the relay started (slow
// consumer, shutdown, ...) names its reason; otherwise the client closed,
// sent a message too big, or the connection broke.
func (c *conn) endReason() string {
	closing, code, why := c.out.closed()
	if closing && why != "" {
		if code == 0 { // dropped without a close frame, see abort
			return why
		}
		return fmt.Sprintf("%s (closed by relay, status %d)", why, int(code))
	}
	err := c.obs.readErr
	var ce *wsconn.CloseError
	var pe *wsconn.ProtocolError
	switch {
	case err == nil:
		return "closed by relay"
	case errors.Is(err, wsconn.ErrMessageTooBig):
		return fmt.Sprintf("message larger than %d bytes (status 1009)", c.maxMessage)
	case errors.As(err, &pe):
		return fmt.Sprintf("protocol error: %s (status %d)", pe.Reason, int(pe.Code))
	case errors.As(err, &ce):
		if ce.Reason != "" {
			return fmt.Sprintf("closed by client (status %d: %s)", int(ce.Code), ce.Reason)
		}
		return fmt.Sprintf("closed by client (status %d)", int(ce.Code))
	case errors.Is(err, io.EOF):
		return "connection lost: closed without a close frame"
	case c.ctx.Err() != nil:
		return "connection lost: write failed"
	}
	return "connection lost: " + err.Error()
}

// query runs a REQ's stored query, timing it for metrics and the slow
// query log.
func (c *conn) query(ctx context.Context, subID string, filters []nostr.Filter, fn func(raw []byte) error) (int64, error) {
	start := time.Now()
	n := 0
	watermark, err := c.r.store.Query(ctx, filters, func(raw []byte) error {
		n++
		return fn(raw)
	})
	c.observeQuery(QueryReq, subID, filters, time.Since(start), err, n)
	return watermark, err
}

// observeQuery records a stored query and logs it when slow.
func (c *conn) observeQuery(kind, subID string, filters []nostr.Filter, took time.Duration, err error, results int) {
	r := c.r
	outcome := QueryOK
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded):
		outcome = QueryTimeout
	case errors.Is(err, errConnClosing) || errors.Is(err, context.Canceled) || c.ctx.Err() != nil:
		outcome = QueryCanceled
	default:
		outcome = QueryError
	}
	r.metrics().Query(kind, outcome, took)
	if slow := r.live.Load().SlowQuery; slow > 0 && took >= slow && outcome != QueryCanceled {
		fs, _ := json.Marshal(filters)
		r.log.Warn("slow query", "kind", kind, "sub", subID, "remote", c.remote,
			"took", took.Round(time.Millisecond), "outcome", outcome, "results", results,
			"filters", string(fs))
	}
}

// eventsStored is the front page's figure; -1 when it cannot be had fast.
func (r *Relay) eventsStored(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	n, approx, err := r.store.Count(ctx, []nostr.Filter{{}})
	if err != nil || approx {
		return -1
	}
	return n
}

// observeIn counts a message read from the client; verb is "" when it
// could not be parsed.
func (c *conn) observeIn(verb string) {
	if verb == "" {
		verb = "invalid"
	}
	c.obs.in++
	c.obs.verb = verb
	c.r.metrics().MessageIn(verb)
	if verb == "EVENT" && c.r.cfg.Senders != nil {
		c.r.cfg.Senders.EventFrom(c.remote)
	}
}
