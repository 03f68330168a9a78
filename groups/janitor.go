package groups

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// A deleted group's events go in the background, chunk by chunk, off the
// writer: a big group would hold it up. Until the last is gone the group
// stays in the state as deleting, so nothing more is taken for it and none
// of its events is served (read.go); its delete-group events go last, so
// that a restart before the end resumes the work (Load, Start).

// janitorChunk is how many events one deletion removes at a time.
const janitorChunk = 500

var errChunkFull = errors.New("chunk full")

// startJanitor starts removing the events of group id, unless that runs
// already. The caller holds s.mu.
func (s *Groups) startJanitor(id string) {
	if s.cleaning[id] {
		return
	}
	s.cleaning[id] = true
	s.janitors.Go(func() { s.clean(id) })
}

// clean removes every event of a deleted group, then forgets the group,
// unless it was stopped first.
func (s *Groups) clean(id string) {
	finished := s.removeEvents(s.ctx, id)
	s.mu.Lock()
	delete(s.cleaning, id)
	if g := s.groups[id]; finished && g != nil && g.deleting {
		delete(s.groups, id) // the id may be used again
	}
	s.mu.Unlock()
	if finished {
		s.log.Info("group deleted", "group", id)
	}
}

// removeEvents removes the group's state events, its events, and last its
// delete-group events; it reports whether it got to the end. Failures are
// logged and retried until ctx ends.
func (s *Groups) removeEvents(ctx context.Context, id string) bool {
	s.deleteSnapshots(ctx, id)
	for ctx.Err() == nil {
		ids, err := s.chunk(ctx, id)
		if err == nil && len(ids) == 0 {
			break
		}
		if err == nil {
			_, err = s.store.DeleteMatching(ctx, []nostr.Filter{{IDs: ids}})
		}
		if err != nil && ctx.Err() == nil {
			s.log.Error("delete a group's events", "group", id, "err", err)
			s.retryLater(ctx)
		}
	}
	for ctx.Err() == nil {
		_, err := s.store.DeleteMatching(ctx, []nostr.Filter{{Kinds: []int{kindDeleteGroup}, Tags: nostr.TagMap{"h": {id}}}})
		if err == nil {
			return true
		}
		if ctx.Err() == nil {
			s.log.Error("delete a group's delete-group events", "group", id, "err", err)
			s.retryLater(ctx)
		}
	}
	return false
}

// chunk lists up to janitorChunk ids of the group's events, its
// delete-group events left out.
func (s *Groups) chunk(ctx context.Context, id string) ([]string, error) {
	var ids []string
	err := s.store.Scan(ctx, []nostr.Filter{{Tags: nostr.TagMap{"h": {id}}}}, func(raw []byte) error {
		var ev struct {
			ID   string `json:"id"`
			Kind int    `json:"kind"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			return err
		}
		if ev.Kind != kindDeleteGroup {
			ids = append(ids, ev.ID)
		}
		if len(ids) >= janitorChunk {
			return errChunkFull
		}
		return nil
	})
	if errors.Is(err, errChunkFull) {
		err = nil
	}
	return ids, err
}

func (s *Groups) retryLater(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
}

// deleteEvents removes what a delete-event named, among the group's own
// events only: a group's moderator moderates that group.
func (s *Groups) deleteEvents(ctx context.Context, d deletion) {
	f := nostr.Filter{IDs: d.ids, Tags: nostr.TagMap{"h": {d.gid}}}
	if _, err := s.store.DeleteMatching(ctx, []nostr.Filter{f}); err != nil {
		s.log.Error("delete events of a group", "group", d.gid, "err", err)
	}
}

// deleteSnapshots removes the relay's state events of a group.
func (s *Groups) deleteSnapshots(ctx context.Context, id string) {
	f := nostr.Filter{Authors: []string{s.cfg.PublicKey}, Kinds: snapshotKinds, Tags: nostr.TagMap{"d": {id}}}
	if _, err := s.store.DeleteMatching(ctx, []nostr.Filter{f}); err != nil && ctx.Err() == nil {
		s.log.Error("delete a group's state events", "group", id, "err", err)
	}
}
