package groups

import (
	"context"
	"slices"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

// batch is one writer batch as the groups stage it: the copies of the
// groups it changed, over the committed state. Only the writer uses it.
type batch struct {
	s      *Groups
	staged map[string]*group // copies of the groups this batch changed
	added  int               // groups the batch created
	dirty  map[string]*[5]bool
	seen   map[string]bool // ids of the state-changing events staged

	deletions []deletion // events removed by delete-event, at Commit
	dropped   []string   // groups deleted, whose snapshots go at Commit
}

// deletion is a delete-event's effect: events of a group to remove.
type deletion struct {
	gid string
	ids []string
}

// Begin starts staging a batch.
func (s *Groups) Begin() wisp.KeeperBatch { return &batch{s: s} }

func (b *batch) group(id string) *group {
	if g, ok := b.staged[id]; ok {
		return g
	}
	return b.s.group(id)
}

func (b *batch) count() int {
	b.s.mu.RLock()
	defer b.s.mu.RUnlock()
	return len(b.s.groups) + b.added
}

// edit returns the batch's copy of group id, making it on first use, and
// marks the snapshots of the given kinds to be made anew.
func (b *batch) edit(id string, kinds ...int) *group {
	g, ok := b.staged[id]
	if !ok {
		if b.staged == nil {
			b.staged, b.dirty = map[string]*group{}, map[string]*[5]bool{}
		}
		c := b.s.group(id)
		if c == nil {
			g = newGroup(id)
			b.added++
		} else {
			g = c.clone()
		}
		b.staged[id] = g
	}
	b.touch(id, kinds...)
	return g
}

func (b *batch) touch(id string, kinds ...int) {
	d := b.dirty[id]
	if d == nil {
		d = &[5]bool{}
		b.dirty[id] = d
	}
	for _, k := range kinds {
		d[snapshotIndex(k)] = true
	}
}

// Stage judges an event against the state the batch holds so far, applies
// what it changes to the batch's copies, and returns the relay-signed
// put-user or remove-user that answers a join or leave request.
func (b *batch) Stage(in *wisp.Input) (wisp.Decision, []*nostr.Event) {
	ev := in.Event
	gid, d := groupOf(ev)
	if d.Action != wisp.Accept || gid == "" {
		if isStateKind(ev.Kind) { // never from outside; Judge said so first
			return rejected(wisp.PrefixBlocked, "events of kinds %d-%d are group state, published by this relay itself (NIP-29)", firstStateKind, lastStateKind), nil
		}
		return d, nil
	}
	d, o := b.s.check(b, ev, gid)
	if d.Action != wisp.Accept || o == nil {
		return d, nil
	}
	// A state-changing event sent twice at once is applied once; the
	// store answers the second a duplicate.
	if b.seen[ev.ID] {
		return wisp.Accepted, nil
	}
	if b.seen == nil {
		b.seen = map[string]bool{}
	}
	b.seen[ev.ID] = true
	return wisp.Accepted, b.apply(o, ev)
}

// apply changes the batch's copies as o says.
func (b *batch) apply(o *op, ev *nostr.Event) []*nostr.Event {
	switch o.kind {
	case kindCreateGroup:
		g := b.edit(o.gid, snapshotKinds...)
		if o.author != b.s.cfg.PublicKey {
			g.members[o.author] = []string{roleAdmin}
		}
	case kindDeleteGroup:
		g := b.edit(o.gid)
		g.deleting = true
		if g.parent != "" {
			if p := b.group(g.parent); p != nil && !p.deleting {
				pc := b.edit(g.parent, kindMetadata)
				pc.children = slices.DeleteFunc(pc.children, func(c string) bool { return c == o.gid })
			}
		}
		for _, c := range g.children {
			if cg := b.group(c); cg != nil && !cg.deleting {
				b.edit(c, kindMetadata).parent = "" // children become roots
			}
		}
		g.parent, g.children = "", nil
		b.dropped = append(b.dropped, o.gid)
	case kindJoinRequest:
		b.edit(o.gid, kindMembers).members[o.author] = nil
		return []*nostr.Event{b.s.sign(kindPutUser, nostr.Tags{{"h", o.gid}, {"p", o.author}}, "joined")}
	case kindLeaveRequest:
		g := b.edit(o.gid, kindMembers)
		if g.hasRoles(o.author) {
			b.touch(o.gid, kindAdmins)
		}
		delete(g.members, o.author)
		return []*nostr.Event{b.s.sign(kindRemoveUser, nostr.Tags{{"h", o.gid}, {"p", o.author}}, "left")}
	case kindPutUser:
		g := b.edit(o.gid, kindMembers)
		for _, t := range o.targets {
			if len(t.roles) > 0 || g.hasRoles(t.pk) {
				b.touch(o.gid, kindAdmins)
			}
			g.members[t.pk] = t.roles
		}
	case kindRemoveUser:
		g := b.edit(o.gid, kindMembers)
		for _, t := range o.targets {
			if g.hasRoles(t.pk) {
				b.touch(o.gid, kindAdmins)
			}
			delete(g.members, t.pk)
		}
	case kindEditMetadata:
		g := b.edit(o.gid, kindMetadata)
		g.meta = o.meta
		if o.parent != g.parent {
			if old := b.group(g.parent); g.parent != "" && old != nil && !old.deleting {
				oc := b.edit(g.parent, kindMetadata)
				oc.children = slices.DeleteFunc(oc.children, func(c string) bool { return c == o.gid })
			}
			if o.parent != "" {
				np := b.edit(o.parent, kindMetadata)
				np.children = append(np.children, o.gid)
			}
			g.parent = o.parent
		}
		g.children = o.children
	case kindDeleteEvent:
		g := b.edit(o.gid)
		for code, id := range g.invites {
			if slices.Contains(o.ids, id) {
				delete(g.invites, code) // deleting a create-invite revokes its codes
			}
		}
		b.deletions = append(b.deletions, deletion{gid: o.gid, ids: o.ids})
	case kindCreateInvite:
		g := b.edit(o.gid)
		for _, c := range o.codes {
			g.invites[c] = ev.ID
		}
	case kindPinList:
		b.edit(o.gid, kindPins).pins = o.pins
	}
	return nil
}

// Extra returns the new snapshots of what the batch changed, one of each
// kind per group however many events changed it.
func (b *batch) Extra() []*nostr.Event {
	var out []*nostr.Event
	ids := make([]string, 0, len(b.dirty))
	for id := range b.dirty {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		g := b.staged[id]
		if g.deleting {
			continue // its snapshots are removed at Commit
		}
		for i, on := range b.dirty[id] {
			if on {
				out = append(out, b.s.snapshot(g, snapshotKinds[i]))
			}
		}
	}
	return out
}

// Commit makes the batch's copies the committed state, removes what
// delete-event named and the snapshots of deleted groups, and starts
// removing the rest of their events.
func (b *batch) Commit(ctx context.Context) {
	if len(b.staged) == 0 {
		return
	}
	s := b.s
	s.mu.Lock()
	for id, g := range b.staged {
		s.groups[id] = g
	}
	for _, id := range b.dropped {
		s.startJanitor(id)
	}
	s.mu.Unlock()
	for _, d := range b.deletions {
		s.deleteEvents(ctx, d)
	}
	for _, id := range b.dropped {
		s.deleteSnapshots(ctx, id)
	}
}

// Abort forgets the batch: it was not saved.
func (b *batch) Abort() {
	// The snapshots' created_at were taken from copies, so nothing of the
	// committed state moved.
}

// sign makes an event signed by the relay's key.
func (s *Groups) sign(kind int, tags nostr.Tags, content string) *nostr.Event {
	ev := &nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(time.Now().Unix()), Tags: tags, Content: content}
	if err := ev.Sign(s.cfg.SecretKey); err != nil {
		panic("sign with the relay's key: " + err.Error()) // the key was checked at start
	}
	return ev
}
