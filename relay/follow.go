package relay

import (
	"encoding/json"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// Other processes may store events in the relay's database: wisp import,
// sync and mirror run their own pipelines over it. Their events reach this
// relay's live subscribers through a follower (Config.FollowStore) that
// reads the store in the order events were stored (storage.SeqLister), as
// up-mirrors do, and broadcasts those this relay's writer did not store
// itself, with their sequence numbers, so that the history/live handoff
// of a subscription (its watermark) holds for them too.
//
// When the store is a storage.Watcher (PostgreSQL under several wisp
// nodes), the follower also wakes as soon as the store says events changed,
// and when the writer records a range the follower had to wait for; the
// ticker stays as a fallback.
//
// Which events are the writer's own: a Save is one exclusive write
// transaction, so every sequence number from the lowest to the highest it
// gave out is the writer's. (On PostgreSQL other processes write too, but
// a Save draws all its numbers in one statement under the write lock every
// Save of every process holds, so its range is still only its own.) The
// writer records that range once Save has returned and the writer has
// broadcast the Save's events, so that nothing another process stored
// after them reaches a subscriber before them. An event the follower
// reads above every recorded range while a Save is under way may belong
// to that Save, not yet recorded, but only if the Save holds an event of
// that id (its events become visible when it commits, before it returns):
// the follower leaves such an event for its next round, by which time the
// range is known, and sends the others at once. A write lock serialises
// the Saves of every process on the store, so an event another process
// committed while this writer's Save runs has a lower sequence number than
// any the Save has not yet committed: sending it now keeps commit order.
// (A Save holding the same id as another process's event is left to
// decide: the other may have stored it first, and the Save then answers
// duplicate.) Other processes' events thus do not wait for this writer's
// Save, which on PostgreSQL may queue behind theirs for the write lock.

// followBatchBytes bounds the stored JSON one round of the follower holds.
const followBatchBytes = 4 << 20

// followState is what the writer and the follower share.
type followState struct {
	mu     sync.Mutex
	on     bool       // a follower runs: the writer records its ranges
	saving bool       // the writer is inside Save
	high   int64      // the highest sequence number recorded
	own    []seqRange // the writer's ranges the follower has not passed, ascending
	// saving: the running Save's items (the writer's slice, unchanged
	// until endSave), for the ids sort needs.
	inflight []storage.Item
	// waiting: the follower left events for the running Save's range to
	// be recorded; endSave then wakes it.
	waiting bool
	wake    chan struct{} // capacity 1: the follower has something to read
}

// poke wakes the follower without blocking; wakes while it is busy
// collapse into one.
func (f *followState) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

type seqRange struct{ lo, hi int64 }

// beginSave is called by the writer before it saves items.
func (f *followState) beginSave(items []storage.Item) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.on {
		return
	}
	f.saving = true
	f.inflight = items
}

// endSave records the sequence numbers Save gave out; called by the writer
// after Save, whatever it returned.
func (f *followState) endSave(results []storage.Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.on {
		return
	}
	f.saving = false
	f.inflight = nil
	if f.waiting {
		f.waiting = false
		f.poke()
	}
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, res := range results {
		if res.Outcome == storage.Stored {
			lo, hi = min(lo, res.Seq), max(hi, res.Seq)
		}
	}
	if hi == 0 {
		return
	}
	f.high = max(f.high, hi)
	if n := len(f.own); n > 0 && f.own[n-1].hi+1 >= lo { // nobody else wrote in between
		f.own[n-1].hi = hi
		return
	}
	f.own = append(f.own, seqRange{lo, hi})
}

// sort splits what the follower read into the writer's own events and
// the others; it returns how far the follower may move (the sequence
// number of the last item decided) and the others.
func (f *followState) sort(items []followItem) (pos int64, others []followItem) {
	f.mu.Lock()
	defer f.mu.Unlock()
	limit := int64(math.MaxInt64)
	if f.saving {
		limit = f.high // above it may be the running Save's
	}
	var saving map[string]bool // the running Save's ids, when first needed
	for _, it := range items {
		if it.seq > limit {
			if saving == nil {
				saving = make(map[string]bool, len(f.inflight))
				for _, in := range f.inflight {
					saving[in.Event.ID] = true
				}
			}
			if saving[storedID(it.raw)] {
				f.waiting = true
				break
			}
		}
		pos = it.seq
		for len(f.own) > 0 && f.own[0].hi < it.seq {
			f.own = f.own[1:]
		}
		if len(f.own) == 0 || it.seq < f.own[0].lo {
			others = append(others, it)
		}
	}
	return pos, others
}

// storedID is the id in a stored event's JSON, "" when it has none.
func storedID(raw []byte) string {
	s := jsonScanner{data: raw}
	s.skipWS()
	if !s.consume('{') {
		return ""
	}
	for {
		s.skipWS()
		if s.peek() != '"' {
			return ""
		}
		key, f := s.readKey()
		s.skipWS()
		if f.msg != "" || !s.consume(':') {
			return ""
		}
		s.skipWS()
		if string(key) == "id" {
			id, f := s.readHex("id", 64)
			if f.msg != "" {
				return ""
			}
			return id
		}
		if f := s.skipValue(maxSkipDepth); f.msg != "" {
			return ""
		}
		s.skipWS()
		if !s.consume(',') {
			return ""
		}
	}
}

type followItem struct {
	seq int64
	raw []byte
}

var errFollowBatchFull = errors.New("follow batch full")

// followLoop broadcasts what other processes store, every interval and
// whenever woken, until the relay stops.
func (r *Relay) followLoop(lister storage.SeqLister, pos int64, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		case <-r.follow.wake:
		}
		for {
			next, more, err := r.followRound(lister, pos)
			if err != nil {
				if r.ctx.Err() == nil {
					r.log.Warn("follow the store", "err", err)
				}
				break
			}
			pos = next
			if !more {
				break
			}
		}
	}
}

// followRound reads the events stored after pos and broadcasts the ones
// the writer did not store; more says there may be more to read now.
func (r *Relay) followRound(lister storage.SeqLister, pos int64) (next int64, more bool, err error) {
	var items []followItem
	held := 0
	err = lister.EventsAfter(r.ctx, pos, 500, func(seq int64, raw []byte) error {
		if held >= followBatchBytes {
			return errFollowBatchFull
		}
		items = append(items, followItem{seq, append([]byte(nil), raw...)})
		held += len(raw)
		return nil
	})
	if err != nil && !errors.Is(err, errFollowBatchFull) {
		return pos, false, err
	}
	full := len(items) == 500 || errors.Is(err, errFollowBatchFull)
	decided, others := r.follow.sort(items)
	if decided == 0 {
		return pos, false, nil // all of it waits for the running Save
	}
	if r.index.size() > 0 { // nobody subscribed: nothing to parse
		for _, it := range others {
			var ev nostr.Event
			if err := json.Unmarshal(it.raw, &ev); err != nil {
				r.log.Warn("follow the store: unreadable stored event", "seq", it.seq, "err", err)
				continue
			}
			r.broadcast(&ev, liveEvent{seq: it.seq, raw: it.raw})
		}
	}
	return decided, full && decided == items[len(items)-1].seq, nil
}

// startFollowing starts the follower when configured and possible.
func (r *Relay) startFollowing() {
	lister, ok := r.store.(storage.SeqLister)
	if r.cfg.FollowStore <= 0 || !ok {
		return
	}
	r.follow.mu.Lock()
	r.follow.on = true // first: what the writer saves from now on is known as its own
	r.follow.wake = make(chan struct{}, 1)
	r.follow.mu.Unlock()
	// The position is read before Start returns, so before any client
	// subscribes: an event another process stores after a subscription
	// began is above it, and reaches that subscription.
	pos, err := lister.LastSeq(r.ctx)
	if err != nil {
		r.log.Error("follow the store: cannot read its position; events stored by other processes will not reach subscribers live", "err", err)
		r.follow.mu.Lock()
		r.follow.on = false
		r.follow.mu.Unlock()
		return
	}
	r.workers.Go(func() { r.followLoop(lister, pos, r.cfg.FollowStore) })
	if w, ok := r.store.(storage.Watcher); ok {
		r.workers.Go(func() { r.watchStore(w) })
	}
}

// watchStore wakes the follower when the store says events changed, until
// the relay stops.
func (r *Relay) watchStore(w storage.Watcher) {
	err := w.Watch(r.ctx, func(c storage.Change) {
		if c&storage.ChangedEvents != 0 {
			r.follow.poke()
		}
	})
	if err != nil && r.ctx.Err() == nil {
		r.log.Warn("watch the store: stopped; events other processes store reach subscribers at the next poll", "err", err)
	}
}
