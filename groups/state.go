package groups

import (
	"maps"
	"slices"
	"strconv"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

// group is one group's state. A group the relay has published is never
// changed in place: a batch changes a copy, and Commit swaps the copies in
// (copy on write), so readers need the lock only to look a group up.
type group struct {
	id       string
	meta     meta
	parent   string   // "" for a root group
	children []string // in the order the parent's metadata lists them
	// members maps each member's pubkey to its roles (none: a plain member).
	members map[string][]string
	pins    nostr.Tags        // e and a tags, as the last pin list gave them
	invites map[string]string // invite code -> id of the kind 9009 that made it
	// snapAt is the created_at of the last snapshot of each kind of
	// snapshotKinds, so that the next one is newer.
	snapAt [5]nostr.Timestamp
	// deleting: a delete-group was stored; its events are being removed
	// (janitor.go) and nothing more is taken for it.
	deleting bool
}

// meta is what kind 39000 says of a group besides its place in the tree.
type meta struct {
	name, picture, banner, about        string
	private, restricted, hidden, closed bool
	// kinds are the supported_kinds; kindsSet false means every kind.
	kinds    []int
	kindsSet bool
}

func newGroup(id string) *group {
	return &group{id: id, members: map[string][]string{}, invites: map[string]string{}}
}

// clone copies g deep enough to change the copy.
func (g *group) clone() *group {
	c := *g
	c.children = slices.Clone(g.children)
	c.members = make(map[string][]string, len(g.members))
	for pk, roles := range g.members {
		c.members[pk] = slices.Clone(roles)
	}
	c.pins = slices.Clone(g.pins)
	c.invites = maps.Clone(g.invites)
	c.meta.kinds = slices.Clone(g.meta.kinds)
	return &c
}

// isMember reports whether any of viewers is a member.
func (g *group) isMember(viewers wisp.Pubkeys) bool {
	for _, pk := range viewers {
		if _, ok := g.members[pk]; ok {
			return true
		}
	}
	return false
}

// can reports whether pk's roles allow what need names.
func (g *group) can(pk string, need capability) bool {
	return capsOf(g.members[pk])&need == need
}

// hasRoles reports whether pk holds any role in g: it is an admin "in a
// broad sense" (NIP-29), listed in kind 39001.
func (g *group) hasRoles(pk string) bool { return len(g.members[pk]) > 0 }

// kindAllowed reports whether g takes events of kind: management events
// always, others as supported_kinds says.
func (g *group) kindAllowed(kind int) bool {
	return !g.meta.kindsSet || isManagement(kind) || slices.Contains(g.meta.kinds, kind)
}

// readable reports whether viewers may read g's events (h-tagged): a
// group being deleted shows nothing, a private one only to members.
func (g *group) readable(viewers wisp.Pubkeys) bool {
	return !g.deleting && (!g.meta.private || g.isMember(viewers))
}

// snapshotReadable reports whether viewers may read g's state event of
// kind: a hidden group's only to members, a private group's member list
// only to members.
func (g *group) snapshotReadable(kind int, viewers wisp.Pubkeys) bool {
	switch {
	case g.deleting:
		return false
	case g.meta.hidden || kind == kindMembers && g.meta.private:
		return g.isMember(viewers)
	}
	return true
}

// metaTags are the tags of kind 39000 after d.
func (g *group) metaTags() nostr.Tags {
	var t nostr.Tags
	m := &g.meta
	for _, kv := range [][2]string{{"name", m.name}, {"picture", m.picture}, {"banner", m.banner}, {"about", m.about}} {
		if kv[1] != "" {
			t = append(t, nostr.Tag{kv[0], kv[1]})
		}
	}
	for _, f := range []struct {
		name string
		on   bool
	}{{"private", m.private}, {"restricted", m.restricted}, {"hidden", m.hidden}, {"closed", m.closed}} {
		if f.on {
			t = append(t, nostr.Tag{f.name})
		}
	}
	if m.kindsSet {
		tag := nostr.Tag{"supported_kinds"}
		for _, k := range m.kinds {
			tag = append(tag, strconv.Itoa(k))
		}
		t = append(t, tag)
	}
	if g.parent != "" {
		t = append(t, nostr.Tag{"parent", g.parent})
	}
	for _, c := range g.children {
		t = append(t, nostr.Tag{"child", c})
	}
	return t
}

// sortedMembers are the members' pubkeys in order, so that snapshots of
// the same state are the same.
func (g *group) sortedMembers() []string {
	return slices.Sorted(maps.Keys(g.members))
}
