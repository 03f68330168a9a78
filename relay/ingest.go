package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

// Events that do not come from a client connection (imports, live mirrors,
// sync) enter the same pipeline through Ingest: the cheap checks, the id
// hash, the policy's early stage with the caller's source, then the verify
// pool (signature, late stage), the batching writer and the fan-out. Every
// event stored, whatever its source, is then offered to the stored-event
// hooks (OnStored), which is how up-mirrors learn what to send.

// IngestOutcome says what became of an ingested event.
type IngestOutcome int

const (
	// IngestStored: stored (or, for an ephemeral event, broadcast). A
	// shadow-rejected event is reported as stored, as a client would be told.
	IngestStored IngestOutcome = iota + 1
	// IngestDuplicate: already stored.
	IngestDuplicate
	// IngestRejected: refused; Reason says why, with a NIP-01 prefix.
	IngestRejected
)

func (o IngestOutcome) String() string {
	switch o {
	case IngestStored:
		return "stored"
	case IngestDuplicate:
		return "duplicate"
	case IngestRejected:
		return "rejected"
	}
	return "unknown"
}

// IngestResult is the outcome of one ingested event.
type IngestResult struct {
	Outcome IngestOutcome
	Reason  string
}

// IngestOptions say where ingested events come from.
type IngestOptions struct {
	// Source is passed to the policy (import, stream or sync).
	Source wisp.Source
	// Remote is the other relay's URL for stream and sync, "" for imports.
	// Stored-event hooks see it as the event's origin.
	Remote string
	// NoVerify skips the signature check (trusted imports only). The id is
	// still checked against the content.
	NoVerify bool
}

// Ingest feeds one event into the relay's pipeline. done is called exactly
// once with the outcome, possibly before Ingest returns, and must not
// block. Ingest blocks while the pipeline is full (backpressure) and gives
// up with a rejection when ctx ends or the relay shuts down.
func (r *Relay) Ingest(ctx context.Context, ev *nostr.Event, opt IngestOptions, done func(IngestResult)) {
	finish := func(ok bool, msg string) {
		done(ingestResult(ok, msg))
	}
	queued, ok, msg := r.admit(ev, arrival{ctx: ctx, source: opt.Source, remote: opt.Remote, noVerify: opt.NoVerify, done: finish})
	if !queued {
		r.countOK(ok, msg)
		finish(ok, msg)
	}
}

func ingestResult(ok bool, msg string) IngestResult {
	switch {
	case ok && wisp.IsReason(msg, wisp.PrefixDuplicate):
		return IngestResult{Outcome: IngestDuplicate, Reason: msg}
	case ok:
		return IngestResult{Outcome: IngestStored, Reason: msg}
	default:
		return IngestResult{Outcome: IngestRejected, Reason: msg}
	}
}

// IngestTally counts the outcomes of Ingest calls, for the commands that
// move events in bulk; it is safe for concurrent use.
type IngestTally struct {
	Stored, Duplicate, Rejected atomic.Int64
}

// Count adds one outcome.
func (t *IngestTally) Count(r IngestResult) {
	switch r.Outcome {
	case IngestStored:
		t.Stored.Add(1)
	case IngestDuplicate:
		t.Duplicate.Add(1)
	default:
		t.Rejected.Add(1)
	}
}

// StoredEvent is an event the writer just committed, as hooks see it.
type StoredEvent struct {
	Event *nostr.Event
	Raw   []byte // canonical JSON; do not modify
	Seq   int64
	// Source and Origin say where it came from: a client (Origin ""), an
	// import, or another relay (Origin is its URL), so that a mirror never
	// sends an event back to the relay it came from.
	Source wisp.Source
	Origin string
}

// storedHooks are the functions told about stored events.
type storedHooks struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(StoredEvent)
	snap atomic.Pointer[[]func(StoredEvent)]
}

// OnStored registers fn to be called, on the writer goroutine, with every
// event stored from now on, after its commit. fn must return at once (hand
// the event to a buffered channel, and drop or catch up when it is full):
// the writer waits for it. remove unregisters fn.
func (r *Relay) OnStored(fn func(StoredEvent)) (remove func()) {
	h := &r.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fns == nil {
		h.fns = map[int]func(StoredEvent){}
	}
	id := h.next
	h.next++
	h.fns[id] = fn
	h.publish()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.fns, id)
		h.publish()
	}
}

func (h *storedHooks) publish() {
	fns := make([]func(StoredEvent), 0, len(h.fns))
	for _, fn := range h.fns {
		fns = append(fns, fn)
	}
	h.snap.Store(&fns)
}

// notifyStored tells the hooks about a committed event; writer only.
func (r *Relay) notifyStored(p *pending, seq int64) {
	fns := r.hooks.snap.Load()
	if fns == nil || len(*fns) == 0 {
		return
	}
	source := wisp.SourceClient
	if p.c == nil {
		source = p.source
	}
	e := StoredEvent{Event: p.ev, Raw: p.raw, Seq: seq, Source: source, Origin: p.origin}
	for _, fn := range *fns {
		fn(e)
	}
}

// ErrMalformed is returned by ParseEvent for anything that is not one event
// object.
var ErrMalformed = errors.New("malformed event")

// ParseEvent parses one event object (a line of a JSON-lines export) as the
// relay parses a client's EVENT, with the same strictness and limits.
func ParseEvent(data []byte, lim Limits) (*nostr.Event, error) {
	if lim.MaxMessageBytes > 0 && len(data) > lim.MaxMessageBytes {
		return nil, fmt.Errorf("%w: too large", ErrMalformed)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrMalformed)
	}
	s := jsonScanner{data: data, src: string(data)}
	s.skipWS()
	ev, _, f := s.parseEvent(&lim)
	if f.msg == "" {
		f = s.trailing()
	}
	if f.msg != "" {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, f.msg)
	}
	return ev, nil
}
