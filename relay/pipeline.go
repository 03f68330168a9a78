package relay

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/storage"
)

// pending is one client event on its way through the pipeline: verify pool,
// then the writer, then an OK to c.
type pending struct {
	ev  *nostr.Event
	raw []byte
	c   *conn
	in  *wisp.Input // for the policy's late stage and the Keeper; nil without either

	// Set for events fed through Ingest (c is nil), see ingest.go.
	noVerify bool
	source   wisp.Source
	origin   string                    // the relay it came from, if any
	done     func(ok bool, msg string) // called with the answer

	// own: signed by the relay itself (SourceRelay, see own.go): neither
	// verified nor judged. derived: signed by the Keeper while staging a
	// batch (keeper.go), saved with it and answered to no one.
	own, derived bool
}

// answer sends the OK for p and marks it done, unless it was answered
// already (by Shutdown, when its time ran out). It never blocks: it runs on
// the verify workers and the writer.
func (r *Relay) answer(p *pending, ok bool, msg string) {
	if !r.inflight.finish(p) {
		return
	}
	r.countOK(ok, msg)
	if p.c != nil {
		p.c.sendNoWait(frame{body: okFrame(p.ev.ID, ok, msg)})
	}
	if p.done != nil {
		p.done(ok, msg)
	}
}

// inflight are the events admitted into the pipeline and not yet answered.
// Shutdown answers those still there when its time is up; each is
// answered once, by whoever finishes it first.
type inflight struct {
	mu sync.Mutex
	m  map[*pending]struct{}
}

func (f *inflight) add(p *pending) {
	f.mu.Lock()
	if f.m == nil {
		f.m = map[*pending]struct{}{}
	}
	f.m[p] = struct{}{}
	f.mu.Unlock()
}

// finish removes p and reports whether it was still there: the caller
// answers it.
func (f *inflight) finish(p *pending) bool {
	f.mu.Lock()
	_, ok := f.m[p]
	delete(f.m, p)
	f.mu.Unlock()
	return ok
}

// snapshot returns the events in flight.
func (f *inflight) snapshot() []*pending {
	f.mu.Lock()
	defer f.mu.Unlock()
	ps := make([]*pending, 0, len(f.m))
	for p := range f.m {
		ps = append(ps, p)
	}
	return ps
}

func okFrame(id string, ok bool, msg string) []byte {
	b := make([]byte, 0, 80+len(msg))
	b = append(b, `["OK","`...)
	b = append(b, id...) // checked hex, needs no escaping
	if ok {
		b = append(b, `",true,`...)
	} else {
		b = append(b, `",false,`...)
	}
	m, _ := json.Marshal(msg)
	b = append(b, m...)
	return append(b, ']')
}

func isEphemeral(kind int) bool { return kind >= 20000 && kind < 30000 }

// verifyLoop checks signatures, the costliest step, off the writer. It
// returns when verifyCh is closed and empty (Shutdown drains the pipeline)
// or when the relay stops; the last worker to return closes writeCh.
func (r *Relay) verifyLoop() {
	defer func() {
		if r.verifiers.Add(-1) == 0 {
			close(r.writeCh) // no worker sends any more
		}
	}()
	for {
		var p *pending
		select {
		case <-r.ctx.Done():
			return // Shutdown answers what is left
		case q, ok := <-r.verifyCh:
			if !ok {
				return
			}
			p = q
		}
		if !p.noVerify && !r.sigs.verifyChecked(p.ev) {
			r.stats.rejected.Add(1)
			r.answer(p, false, wisp.Reason(wisp.PrefixInvalid, "bad signature"))
			continue
		}
		if p.c != nil && r.cfg.Senders != nil {
			r.cfg.Senders.EventBy(p.ev.PubKey) // signed by its author: a forger cannot charge someone else
		}
		if !r.judgeLate(p) {
			continue
		}
		select {
		case r.writeCh <- p:
		case <-r.ctx.Done():
			return
		}
	}
}

// writeLoop is the single writer: it drains the queue into one transaction
// per batch, answers after COMMIT, then broadcasts what was stored. It
// returns when writeCh is closed and empty, or when the relay stops.
func (r *Relay) writeLoop() {
	defer close(r.writerDone)
	batch := make([]*pending, 0, r.cfg.WriteBatchMax)
	items := make([]storage.Item, 0, r.cfg.WriteBatchMax)
	for {
		select {
		case <-r.ctx.Done():
			return // Shutdown answers what is left
		case p, ok := <-r.writeCh:
			if !ok {
				return
			}
			batch = append(batch[:0], p)
		}
	fill:
		for len(batch) < r.cfg.WriteBatchMax {
			select {
			case p, ok := <-r.writeCh:
				if !ok {
					break fill // the next receive returns
				}
				batch = append(batch, p)
			default:
				break fill
			}
		}
		r.writeBatch(batch, items)
		clear(batch)
	}
}

// writeBatch saves one batch and answers each of its events. Answers never
// block (sendNoWait, done callbacks and hooks must not), so the writer
// waits on nothing but the store (and the Keeper's Commit).
func (r *Relay) writeBatch(batch []*pending, items []storage.Item) {
	var kb wisp.KeeperBatch
	if r.cfg.Groups != nil {
		kb = r.cfg.Groups.Begin()
		batch = r.stage(kb, batch)
	}
	items = items[:0]
	for _, p := range batch {
		if !isEphemeral(p.ev.Kind) {
			items = append(items, storage.Item{Event: p.ev, Raw: p.raw})
		}
	}
	var results []storage.Result
	var err error
	if len(items) > 0 {
		start := time.Now()
		r.follow.beginSave(items)
		results, err = r.store.Save(r.ctx, items)
		r.metrics().WriteBatch(len(items), time.Since(start), err)
	}
	if err != nil {
		r.log.Error("save batch", "events", len(items), "err", err)
	}
	if kb != nil {
		if err != nil {
			kb.Abort()
		} else {
			kb.Commit(r.ctx)
		}
	}
	i := 0
	for _, p := range batch {
		if p.derived {
			r.storedDerived(p, err, results, &i)
			continue
		}
		if isEphemeral(p.ev.Kind) {
			r.metrics().Event(OutcomeEphemeral, "")
			r.answer(p, true, "")
			r.broadcast(p.ev, liveEvent{raw: p.raw})
			continue
		}
		if err != nil {
			r.answer(p, false, wisp.InternalError)
			continue
		}
		res := results[i]
		i++
		switch res.Outcome {
		case storage.Stored:
			r.stats.stored.Add(1)
			r.metrics().Event(OutcomeStored, "")
			r.answer(p, true, "")
			r.broadcast(p.ev, liveEvent{seq: res.Seq, raw: p.raw})
			r.notifyStored(p, res.Seq)
		case storage.Duplicate:
			r.stats.duplicate.Add(1)
			r.answer(p, true, wisp.Reason(wisp.PrefixDuplicate, "already have this event"))
		case storage.Deleted:
			r.stats.rejected.Add(1)
			r.answer(p, false, wisp.Reason(wisp.PrefixBlocked, "this event was deleted by its author (NIP-09, NIP-62)"))
		case storage.Superseded:
			r.stats.rejected.Add(1)
			r.answer(p, false, wisp.Reason(wisp.PrefixBlocked, "a newer version of this event is already stored"))
		default:
			r.log.Error("save: unknown outcome", "outcome", res.Outcome)
			r.answer(p, false, wisp.InternalError)
		}
	}
	if len(items) > 0 {
		// Only now, after the broadcasts: until then the follower holds
		// back what others stored after this Save, so that subscribers
		// get this relay's events and theirs in commit order.
		r.follow.endSave(results)
	}
	clear(items) // hold no events until the next batch
}

// broadcast hands a committed (or ephemeral) event to every subscription
// that matches it. The writer calls it, and the follower (follow.go) for
// events other processes stored; one at a time.
func (r *Relay) broadcast(ev *nostr.Event, e liveEvent) {
	r.bcastMu.Lock()
	defer r.bcastMu.Unlock()
	private := isPrivateKind(ev.Kind)
	var guarded func(wisp.Pubkeys) bool // nil: everyone may see ev
	if r.cfg.Groups != nil {
		guarded = r.cfg.Groups.LiveVisibility(ev)
	}
	r.index.match(ev, func(s *sub) {
		if private && !s.c.maySee(ev) {
			return // private messages reach only their recipients
		}
		if guarded != nil && !guarded(s.c.auth.pubkeys()) {
			return // nor do private groups' events reach non-members
		}
		s.deliver(e, s.c.out.budget)
	})
}

// stage runs the Keeper over a batch in order: events it refuses are
// answered and dropped, the events it signs in answer follow theirs, and
// its snapshots come last. Writer only.
func (r *Relay) stage(kb wisp.KeeperBatch, batch []*pending) []*pending {
	out := make([]*pending, 0, len(batch))
	for _, p := range batch {
		if p.own {
			out = append(out, p)
			continue
		}
		in := p.in
		if in == nil {
			in = &wisp.Input{Event: p.ev, Raw: p.raw, Source: p.source}
		}
		d, extra := kb.Stage(in)
		switch d.Action {
		case wisp.Reject:
			r.stats.rejected.Add(1)
			r.answer(p, false, d.Reason)
			continue
		case wisp.ShadowReject:
			r.answer(p, true, d.Reason)
			continue
		}
		out = append(out, p)
		out = r.appendDerived(out, extra)
	}
	return r.appendDerived(out, kb.Extra())
}

func (r *Relay) appendDerived(out []*pending, evs []*nostr.Event) []*pending {
	for _, ev := range evs {
		out = append(out, &pending{ev: ev, raw: canonicalEvent(ev), source: wisp.SourceRelay, derived: true})
	}
	return out
}

// storedDerived broadcasts a Keeper's event once saved; nobody waits for
// its answer. *i walks results as writeBatch does.
func (r *Relay) storedDerived(p *pending, err error, results []storage.Result, i *int) {
	if isEphemeral(p.ev.Kind) {
		r.broadcast(p.ev, liveEvent{raw: p.raw})
		return
	}
	if err != nil {
		return
	}
	res := results[*i]
	*i++
	if res.Outcome != storage.Stored {
		r.log.Warn("relay-signed event not stored", "kind", p.ev.Kind, "id", p.ev.ID, "outcome", res.Outcome)
		return
	}
	r.stats.stored.Add(1)
	r.broadcast(p.ev, liveEvent{seq: res.Seq, raw: p.raw})
	r.notifyStored(p, res.Seq)
}
