package relay

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip77/negentropy"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/storage"
)

// NIP-77: negentropy set reconciliation. A client opens a session with
// NEG-OPEN (a filter and its first message); the relay lists the
// (created_at, id) of the matching events once, into a sorted vector, and
// answers each message with NEG-MSG until the client closes the session
// with NEG-CLOSE. go-nostr's negentropy implementation does the protocol.
// Sessions belong to the connection's handler, like subscriptions.

// NegentropyConfig configures NIP-77.
type NegentropyConfig struct {
	// Enabled turns NIP-77 on; it is then advertised in NIP-11.
	Enabled bool
	// MaxEvents caps the events one session may cover (0: 500000). A larger
	// set is refused with NEG-ERR "blocked:": narrow the filter.
	MaxEvents int
	// FrameBytes caps one negentropy message the relay sends, before hex
	// encoding (0: 65536; at least 4096).
	FrameBytes int
	// MaxTotalEvents caps the events all open sessions of the relay hold
	// together (0: 2000000, 80 MB): past it a NEG-OPEN is refused with
	// rate-limited: until others close.
	MaxTotalEvents int
}

const (
	defaultNegMaxEvents      = 500000
	defaultNegMaxTotalEvents = 2000000
	defaultNegFrameBytes     = 65536
	// maxNegSessions bounds the open sessions of one connection; together
	// they hold at most MaxEvents events.
	maxNegSessions = 4
)

func (r *Relay) negMaxTotalEvents() int64 {
	if r.cfg.Negentropy.MaxTotalEvents > 0 {
		return int64(r.cfg.Negentropy.MaxTotalEvents)
	}
	return defaultNegMaxTotalEvents
}

func (r *Relay) negMaxEvents() int {
	if r.cfg.Negentropy.MaxEvents > 0 {
		return r.cfg.Negentropy.MaxEvents
	}
	return defaultNegMaxEvents
}

func (r *Relay) negFrameBytes() int {
	n := r.cfg.Negentropy.FrameBytes
	if n <= 0 {
		n = defaultNegFrameBytes
	}
	return max(n, 4096)
}

// negSession is one open NEG-OPEN.
type negSession struct {
	neg    *negentropy.Negentropy
	events int // held in its vector, counted in conn.negEvents and Relay.negHeld
}

// closeNeg ends a session, if open, and gives back what it held.
// Handler goroutine only (and the connection's end).
func (c *conn) closeNeg(subID string) {
	s, ok := c.negs[subID]
	if !ok {
		return
	}
	delete(c.negs, subID)
	c.negEvents -= s.events
	c.r.negHeld.Add(-int64(s.events))
}

var negPrefix = []byte(`"NEG-`)

// isNegMsg reports whether a frame is a NIP-77 message: its first element
// is a string starting with NEG-.
func isNegMsg(data []byte) bool {
	d := bytes.TrimLeft(data, " \t\r\n")
	if len(d) == 0 || d[0] != '[' {
		return false
	}
	d = bytes.TrimLeft(d[1:], " \t\r\n")
	return bytes.HasPrefix(d, negPrefix)
}

func (c *conn) negErr(subID, msg string) {
	c.r.metrics().Refused(RefusedNeg, reasonPrefix(msg))
	b, _ := json.Marshal([]string{"NEG-ERR", subID, msg})
	c.sendWait(frame{body: b})
}

func (c *conn) negMsg(subID, msg string) {
	b := make([]byte, 0, len(subID)+len(msg)+20)
	b = append(b, `["NEG-MSG",`...)
	sid, _ := json.Marshal(subID)
	b = append(b, sid...)
	b = append(b, `,"`...)
	b = append(b, msg...) // hex
	b = append(b, `"]`...)
	c.sendWait(frame{body: b})
}

// handleNeg handles NEG-OPEN, NEG-MSG and NEG-CLOSE.
func (c *conn) handleNeg(data []byte) {
	r := c.r
	var arr []json.RawMessage
	var verb string
	if !utf8.Valid(data) || json.Unmarshal(data, &arr) != nil || len(arr) < 2 || json.Unmarshal(arr[0], &verb) != nil {
		c.observeIn("")
		c.notice(wisp.Reason(wisp.PrefixInvalid, "malformed negentropy message"))
		return
	}
	switch verb {
	case "NEG-OPEN", "NEG-MSG", "NEG-CLOSE":
		c.observeIn(verb)
	default:
		c.observeIn("")
		c.notice(wisp.Reason(wisp.PrefixInvalid, "unknown message type "+strconv.Quote(verb)))
		return
	}
	if !r.cfg.Negentropy.Enabled {
		c.notice(wisp.Reason(wisp.PrefixBlocked, "negentropy (NIP-77) is not supported by this relay"))
		return
	}
	var subID string
	if json.Unmarshal(arr[1], &subID) != nil || subID == "" || len(subID) > r.limits().MaxSubIDLength {
		c.notice(wisp.Reason(wisp.PrefixInvalid, fmt.Sprintf("subscription id must be 1 to %d characters", r.limits().MaxSubIDLength)))
		return
	}
	switch verb {
	case "NEG-CLOSE":
		c.closeNeg(subID)
	case "NEG-OPEN":
		// ["NEG-OPEN", id, filter, msg]; an older draft put an id size
		// before the message.
		if len(arr) != 4 && len(arr) != 5 {
			c.negErr(subID, wisp.Reason(wisp.PrefixInvalid, "NEG-OPEN takes a subscription id, a filter and a message"))
			return
		}
		var msg string
		if json.Unmarshal(arr[len(arr)-1], &msg) != nil {
			c.negErr(subID, wisp.Reason(wisp.PrefixInvalid, "negentropy message must be a hex string"))
			return
		}
		c.negOpen(subID, arr[2], msg)
	case "NEG-MSG":
		var msg string
		if len(arr) != 3 || json.Unmarshal(arr[2], &msg) != nil {
			c.negErr(subID, wisp.Reason(wisp.PrefixInvalid, "NEG-MSG takes a subscription id and a hex message"))
			return
		}
		s, ok := c.negs[subID]
		if !ok {
			c.negErr(subID, wisp.Reason("closed", "no such negentropy session; send NEG-OPEN"))
			return
		}
		c.negReconcile(subID, s, msg)
	}
}

func (c *conn) negOpen(subID string, rawFilter json.RawMessage, msg string) {
	r := c.r
	c.closeNeg(subID) // a NEG-OPEN with an open id replaces it
	if c.negs == nil {
		c.negs = map[string]*negSession{}
	}
	if len(c.negs) >= maxNegSessions {
		c.negErr(subID, wisp.Reason(wisp.PrefixBlocked, fmt.Sprintf("too many open negentropy sessions (at most %d)", maxNegSessions)))
		return
	}
	s := jsonScanner{data: rawFilter}
	f, jf := s.parseFilter(r.limits())
	if jf.msg == "" {
		jf = s.trailing()
	}
	if jf.msg != "" {
		c.negErr(subID, wisp.Reason(wisp.PrefixInvalid, jf.msg))
		return
	}
	if f.Search != "" {
		c.negErr(subID, wisp.Reason(wisp.PrefixBlocked, "search is not supported in negentropy sessions"))
		return
	}
	filters := []nostr.Filter{f}
	if why := c.readRefusal(filters); why != "" {
		if wisp.IsReason(why, wisp.PrefixAuthRequired) {
			c.sendChallenge()
		}
		c.negErr(subID, why)
		return
	}

	// What the session may hold: the per-session cap, less what the
	// connection's other sessions hold, and what the relay has left.
	maxEvents := r.negMaxEvents()
	mine := maxEvents - c.negEvents
	relayLeft := r.negMaxTotalEvents() - r.negHeld.Load()
	if relayLeft <= 0 {
		c.negErr(subID, wisp.Reason(wisp.PrefixRateLimited, "the relay holds as many negentropy sessions as it can; try again later"))
		return
	}
	allowed := min(mine, int(min(relayLeft, int64(maxEvents))))

	vec := &negVector{}
	ctx, cancel := context.WithTimeout(c.ctx, r.limits().QueryTimeout)
	err := c.listIDs(ctx, filters, allowed, vec.insert)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrTooMany) && allowed == maxEvents:
		c.negErr(subID, wisp.Reason(wisp.PrefixBlocked, fmt.Sprintf("this query is too big: more than %d events; narrow the filter", maxEvents)))
		return
	case errors.Is(err, storage.ErrTooMany) && allowed == mine:
		c.negErr(subID, wisp.Reason(wisp.PrefixBlocked, fmt.Sprintf("this connection's negentropy sessions would hold more than %d events; close some", maxEvents)))
		return
	case errors.Is(err, storage.ErrTooMany):
		c.negErr(subID, wisp.Reason(wisp.PrefixRateLimited, "the relay holds as many negentropy sessions as it can; try again later"))
		return
	default:
		if why := c.queryFailure(err, subID, "listing the events"); why != "" {
			c.negErr(subID, why)
		}
		return
	}
	n := vec.Size()
	if r.negHeld.Add(int64(n)) > r.negMaxTotalEvents() { // others took the room meanwhile
		r.negHeld.Add(-int64(n))
		c.negErr(subID, wisp.Reason(wisp.PrefixRateLimited, "the relay holds as many negentropy sessions as it can; try again later"))
		return
	}
	vec.seal()
	sess := &negSession{neg: negentropy.New(vec, r.negFrameBytes()), events: n}
	c.negs[subID] = sess
	c.negEvents += n
	c.negReconcile(subID, sess, msg)
}

func (c *conn) negReconcile(subID string, s *negSession, msg string) {
	out, err := reconcileSafely(s.neg, msg)
	if err != nil {
		c.closeNeg(subID)
		c.negErr(subID, wisp.Reason(wisp.PrefixInvalid, "bad negentropy message: "+err.Error()))
		return
	}
	c.negMsg(subID, out)
}

// reconcileSafely runs one reconciliation step; a malformed message the
// library does not catch must not take the connection down.
func reconcileSafely(neg *negentropy.Negentropy, msg string) (out string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed message")
		}
	}()
	if len(msg)%2 != 0 {
		return "", errors.New("odd hex length")
	}
	b, err := hex.DecodeString(msg)
	if err != nil {
		return "", errors.New("not hex")
	}
	if err := checkNegMessage(b); err != nil {
		return "", err
	}
	return neg.Reconcile(msg)
}

// readRefusal runs the read policy and the private-message rule for a
// negentropy session, as for a REQ; it returns "" or a prefixed reason.
func (c *conn) readRefusal(filters []nostr.Filter) string {
	r := c.r
	authed := c.auth.pubkeys()
	if r.cfg.Policy != nil {
		d := r.cfg.Policy.Read(&wisp.ReadInput{Remote: c.remote, Authed: authed, Filters: filters, Time: time.Now()})
		if d.Action != wisp.Accept {
			return d.Reason
		}
	}
	if len(authed) == 0 && onlyPrivateKinds(filters) {
		return wisp.Reason(wisp.PrefixAuthRequired, "private messages are served only to their recipients; authenticate first")
	}
	return c.guardRefusal(filters)
}

// listIDs lists (created_at, hex id) of the events the connection may see
// that match filters: from the id index when the connection may see every
// match, else by reading each event to check who may see it (private
// messages, private groups).
func (c *conn) listIDs(ctx context.Context, filters []nostr.Filter, maxEvents int, fn func(createdAt int64, id []byte)) error {
	store := c.r.store
	lister, canList := store.(storage.IDLister)
	if canList && !mayMatchPrivate(filters) {
		// What the ReadGuard hides is listed from the index too, and left out.
		skip, ok := c.hiddenIDs(ctx, lister, filters, maxEvents)
		if ok {
			return lister.ListIDs(ctx, filters, maxEvents, func(createdAt int64, id []byte) error {
				if skip == nil || !skip[[32]byte(id)] {
					fn(createdAt, id)
				}
				return nil
			})
		}
	}
	visible := c.rawVisible(filters)
	n := 0
	each := func(raw []byte) error {
		if visible != nil && !visible(raw) {
			return nil
		}
		n++
		if n > maxEvents {
			return storage.ErrTooMany
		}
		createdAt, id, ok := rawIDAndTime(raw)
		var b [32]byte
		if _, err := hex.Decode(b[:], []byte(id)); !ok || err != nil {
			return fmt.Errorf("stored event without id or created_at: %.80s", raw)
		}
		fn(createdAt, b[:])
		return nil
	}
	unlimited := make([]nostr.Filter, len(filters))
	for i, f := range filters {
		f.Limit, f.LimitZero = 0, false
		unlimited[i] = f
	}
	if sc, ok := store.(storage.Eraser); ok {
		return sc.Scan(ctx, unlimited, each)
	}
	return errors.New("the store cannot list events for negentropy")
}

// hiddenIDs lists the ids of the events among those filters match that
// the ReadGuard hides from the connection (nil: none). It reports false
// when they are more than maxEvents: the caller reads each event instead.
func (c *conn) hiddenIDs(ctx context.Context, lister storage.IDLister, filters []nostr.Filter, maxEvents int) (map[[32]byte]bool, bool) {
	g := c.r.cfg.Groups
	if g == nil {
		return nil, true
	}
	hidden := g.Hidden(filters, c.auth.pubkeys())
	if hidden == nil {
		return nil, true
	}
	skip := map[[32]byte]bool{}
	err := lister.ListIDs(ctx, hidden, maxEvents, func(_ int64, id []byte) error {
		skip[[32]byte(id)] = true
		return nil
	})
	return skip, err == nil
}

var createdAtKey = []byte(`,"created_at":`)

// rawIDAndTime reads the id and created_at from canonical event JSON,
// which starts {"id":"<64 hex>", and has created_at before any tag.
func rawIDAndTime(raw []byte) (int64, string, bool) {
	const idStart = len(`{"id":"`)
	if len(raw) < idStart+64 || !bytes.HasPrefix(raw, []byte(`{"id":"`)) {
		return 0, "", false
	}
	id := string(raw[idStart : idStart+64])
	i := bytes.Index(raw, createdAtKey)
	if i < 0 {
		return 0, "", false
	}
	rest := raw[i+len(createdAtKey):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	ts, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	if err != nil {
		return 0, "", false
	}
	return ts, id, true
}
