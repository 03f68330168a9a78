package groups

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// snapshot signs g's state event of kind (39000-39005), newer than the
// last one of that kind (so that it replaces it even within a second),
// and records its created_at in g, the batch's copy.
func (s *Groups) snapshot(g *group, kind int) *nostr.Event {
	tags := nostr.Tags{{"d", g.id}}
	content := ""
	switch kind {
	case kindMetadata:
		tags = append(tags, g.metaTags()...)
	case kindAdmins:
		for _, pk := range g.sortedMembers() {
			if roles := g.members[pk]; len(roles) > 0 {
				tags = append(tags, append(nostr.Tag{"p", pk}, roles...))
			}
		}
	case kindMembers:
		for _, pk := range g.sortedMembers() {
			tags = append(tags, nostr.Tag{"p", pk})
		}
	case kindRoles:
		for _, r := range roleDescriptions {
			tags = append(tags, nostr.Tag{"role", r[0], r[1]})
		}
	case kindPins:
		tags = append(tags, g.pins...)
	}
	i := snapshotIndex(kind)
	at := max(nostr.Timestamp(time.Now().Unix()), g.snapAt[i]+1)
	g.snapAt[i] = at
	ev := &nostr.Event{Kind: kind, CreatedAt: at, Tags: tags, Content: content}
	if err := ev.Sign(s.cfg.SecretKey); err != nil {
		panic("sign with the relay's key: " + err.Error())
	}
	return ev
}

// Load rebuilds the groups from the store: each group's state from the
// newest snapshots the relay signed (a group exists while its kind 39000
// does), the groups being deleted from the delete-group events still
// stored, and the invite codes from the create-invite events.
func (s *Groups) Load(ctx context.Context) error {
	groups := map[string]*group{}
	get := func(id string) *group {
		g := groups[id]
		if g == nil {
			g = newGroup(id)
			groups[id] = g
		}
		return g
	}
	var snaps [5][]*nostr.Event
	err := s.scan(ctx, nostr.Filter{Authors: []string{s.cfg.PublicKey}, Kinds: snapshotKinds}, func(ev *nostr.Event) {
		if i := snapshotIndex(ev.Kind); i >= 0 && validID(tagValue(ev.Tags, "d")) {
			snaps[i] = append(snaps[i], ev)
		}
	})
	if err != nil {
		return fmt.Errorf("load group state: %w", err)
	}
	// Metadata first: it says which groups exist.
	for _, ev := range snaps[0] {
		g := get(tagValue(ev.Tags, "d"))
		g.snapAt[0] = ev.CreatedAt
		loadMetadata(g, ev.Tags)
	}
	for i, evs := range snaps[1:] {
		for _, ev := range evs {
			g := groups[tagValue(ev.Tags, "d")]
			if g == nil {
				continue // state of a group whose metadata is gone
			}
			g.snapAt[i+1] = ev.CreatedAt
			for _, tag := range ev.Tags {
				switch {
				case ev.Kind == kindPins && len(tag) >= 2 && (tag[0] == "e" || tag[0] == "a"):
					g.pins = append(g.pins, nostr.Tag{tag[0], tag[1]})
				case len(tag) < 2 || tag[0] != "p" || !nostr.IsValid32ByteHex(tag[1]):
				case ev.Kind == kindAdmins:
					g.members[tag[1]] = slices.Clone(tag[2:])
				case ev.Kind == kindMembers:
					if _, ok := g.members[tag[1]]; !ok {
						g.members[tag[1]] = nil
					}
				}
			}
		}
	}
	err = s.scan(ctx, nostr.Filter{Kinds: []int{kindDeleteGroup}}, func(ev *nostr.Event) {
		if gid := tagValue(ev.Tags, "h"); validID(gid) {
			get(gid).deleting = true
		}
	})
	if err != nil {
		return fmt.Errorf("load deleted groups: %w", err)
	}
	err = s.scan(ctx, nostr.Filter{Kinds: []int{kindCreateInvite}}, func(ev *nostr.Event) {
		g := groups[tagValue(ev.Tags, "h")]
		if g == nil || g.deleting {
			return
		}
		for _, tag := range ev.Tags {
			if len(tag) >= 2 && tag[0] == "code" && validCode(tag[1]) && len(g.invites) < maxInvites {
				g.invites[tag[1]] = ev.ID
			}
		}
	})
	if err != nil {
		return fmt.Errorf("load invite codes: %w", err)
	}
	s.mu.Lock()
	s.groups = groups
	s.mu.Unlock()
	return nil
}

// loadMetadata reads a kind 39000 of the relay's into g.
func loadMetadata(g *group, tags nostr.Tags) {
	var parents []string
	g.meta, parents, g.children, _ = readMeta(tags)
	if len(parents) > 0 {
		g.parent = parents[0]
	}
}

// scan calls fn with every stored event matching f.
func (s *Groups) scan(ctx context.Context, f nostr.Filter, fn func(*nostr.Event)) error {
	return s.store.Scan(ctx, []nostr.Filter{f}, func(raw []byte) error {
		var ev nostr.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return fmt.Errorf("stored event: %w", err)
		}
		fn(&ev)
		return nil
	})
}
