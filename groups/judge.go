package groups

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

// Limits of what one group holds besides its members.
const (
	maxInvites  = 100 // invite codes of one group
	maxPins     = 100 // pinned events of one group
	maxPrevious = 50  // timeline references of one event: "the last 50 events"
)

// view is the state a check reads: the committed groups (Judge) or those a
// batch has staged over them (Stage).
type view interface {
	group(id string) *group
	count() int // groups held, those being deleted included
}

// op is what an accepted event changes; check returns it and Stage
// applies it. nil: the event changes nothing (a message in a group).
type op struct {
	kind     int
	gid      string
	author   string
	targets  []target // put-user, remove-user
	meta     meta     // edit-metadata
	parent   string
	children []string
	ids      []string   // delete-event
	codes    []string   // create-invite
	pins     nostr.Tags // update-pin-list
}

type target struct {
	pk    string
	roles []string
}

func rejected(prefix, format string, args ...any) wisp.Decision {
	return wisp.Rejected(prefix, fmt.Sprintf(format, args...))
}

// groupOf returns the group an event is for, from its h tag: "" when it has
// none, and a refusal when it has several or a malformed one.
func groupOf(ev *nostr.Event) (string, wisp.Decision) {
	gid, n := "", 0
	for _, tag := range ev.Tags {
		if len(tag) >= 1 && tag[0] == "h" {
			n++
			if len(tag) >= 2 {
				gid = tag[1]
			}
		}
	}
	switch {
	case n == 0:
		return "", wisp.Accepted
	case n > 1:
		return "", rejected(wisp.PrefixInvalid, "an event belongs to one group: it has %d h tags", n)
	case !validID(gid):
		return "", rejected(wisp.PrefixInvalid, "group ids are 1 to 64 letters, digits, '-' or '_' (NIP-29 h tag)")
	}
	return gid, wisp.Accepted
}

// check judges an event for group gid against the state v holds. self
// (the relay's own key) may do anything.
func (s *Groups) check(v view, ev *nostr.Event, gid string) (wisp.Decision, *op) {
	author := ev.PubKey
	self := author == s.cfg.PublicKey
	g := v.group(gid)
	if ev.Kind == kindCreateGroup {
		switch {
		case g != nil && g.deleting:
			return rejected(wisp.PrefixBlocked, "group %q is being deleted; try again later", gid), nil
		case g != nil:
			return rejected(wisp.PrefixBlocked, "group %q already exists on this relay", gid), nil
		case !self && len(s.creators) > 0 && !s.creators[author]:
			return rejected(wisp.PrefixRestricted, "only the relay's group creators may create groups here"), nil
		case v.count() >= s.cfg.MaxGroups:
			return rejected(wisp.PrefixBlocked, "this relay holds as many groups as it may (%d)", s.cfg.MaxGroups), nil
		}
		return wisp.Accepted, &op{kind: kindCreateGroup, gid: gid, author: author}
	}
	switch {
	case g == nil:
		return rejected(wisp.PrefixBlocked, "there is no group %q on this relay; create it first (kind 9007)", gid), nil
	case g.deleting:
		return rejected(wisp.PrefixBlocked, "group %q was deleted", gid), nil
	case !g.kindAllowed(ev.Kind):
		return rejected(wisp.PrefixBlocked, "group %q does not take events of kind %d (supported_kinds)", gid, ev.Kind), nil
	}
	_, member := g.members[author]
	switch {
	case ev.Kind == kindJoinRequest:
		return s.checkJoin(g, ev, member)
	case ev.Kind == kindLeaveRequest:
		if !member {
			return rejected(wisp.PrefixBlocked, "you are not a member of group %q", gid), nil
		}
		return wisp.Accepted, &op{kind: kindLeaveRequest, gid: gid, author: author}
	case isModeration(ev.Kind):
		return s.checkModeration(v, g, ev, self)
	case g.meta.restricted && !member && !self:
		return rejected(wisp.PrefixRestricted, "only members may write in group %q; ask to join (kind 9021)", gid), nil
	}
	return wisp.Accepted, nil
}

func (s *Groups) checkJoin(g *group, ev *nostr.Event, member bool) (wisp.Decision, *op) {
	if member {
		return wisp.Rejected(wisp.PrefixDuplicate, "you are already a member of group "+strconv.Quote(g.id)), nil
	}
	if g.meta.closed {
		code := tagValue(ev.Tags, "code")
		switch {
		case code == "":
			return rejected(wisp.PrefixRestricted, "group %q is closed: joining needs an invite code from its admins", g.id), nil
		case g.invites[code] == "":
			return rejected(wisp.PrefixRestricted, "that invite code is not valid for group %q", g.id), nil
		}
	}
	if len(g.members) >= s.cfg.MaxMembers {
		return rejected(wisp.PrefixBlocked, "group %q is full (at most %d members)", g.id, s.cfg.MaxMembers), nil
	}
	return wisp.Accepted, &op{kind: kindJoinRequest, gid: g.id, author: ev.PubKey}
}

// checkModeration judges kinds 9000-9020: the author's roles must allow
// the action, and its tags must make sense.
func (s *Groups) checkModeration(v view, g *group, ev *nostr.Event, self bool) (wisp.Decision, *op) {
	o := &op{kind: ev.Kind, gid: g.id, author: ev.PubKey}
	var need capability
	var what string
	switch ev.Kind {
	case kindPutUser, kindRemoveUser:
		what = "add or remove members"
		need = capAddMembers
		if ev.Kind == kindRemoveUser {
			need = capRemoveMembers
		}
		for _, tag := range ev.Tags {
			if len(tag) < 2 || tag[0] != "p" {
				continue
			}
			if !nostr.IsValid32ByteHex(tag[1]) {
				return rejected(wisp.PrefixInvalid, "p tags name members by 64-hex pubkey"), nil
			}
			t := target{pk: tag[1]}
			if ev.Kind == kindPutUser {
				for _, r := range tag[2:] {
					if r != "" && !slices.Contains(t.roles, r) {
						t.roles = append(t.roles, r)
					}
				}
			}
			if len(t.roles) > 0 || g.hasRoles(t.pk) {
				need, what = need|capSetRoles, "give or take roles"
			}
			o.targets = append(o.targets, t)
		}
		if len(o.targets) == 0 {
			return rejected(wisp.PrefixInvalid, "kind %d needs p tags naming the members", ev.Kind), nil
		}
		if ev.Kind == kindPutUser {
			joining := 0
			for _, t := range o.targets {
				if _, ok := g.members[t.pk]; !ok {
					joining++
				}
			}
			if len(g.members)+joining > s.cfg.MaxMembers {
				return rejected(wisp.PrefixBlocked, "group %q is full (at most %d members)", g.id, s.cfg.MaxMembers), nil
			}
		}
	case kindEditMetadata:
		need, what = capEditMetadata, "edit the group's metadata"
		if d := s.checkMetadata(v, g, ev, o, self); d.Action != wisp.Accept {
			return d, nil
		}
	case kindDeleteEvent:
		need, what = capDeleteEvents, "delete events"
		for _, tag := range ev.Tags {
			if len(tag) >= 2 && tag[0] == "e" {
				if !nostr.IsValid32ByteHex(tag[1]) {
					return rejected(wisp.PrefixInvalid, "e tags name events by 64-hex id"), nil
				}
				o.ids = append(o.ids, tag[1])
			}
		}
		if len(o.ids) == 0 {
			return rejected(wisp.PrefixInvalid, "kind 9005 needs e tags naming the events to delete"), nil
		}
	case kindDeleteGroup:
		need, what = capDeleteGroup, "delete the group"
	case kindCreateInvite:
		need, what = capCreateInvites, "make invite codes"
		for _, tag := range ev.Tags {
			if len(tag) >= 2 && tag[0] == "code" {
				if !validCode(tag[1]) {
					return rejected(wisp.PrefixInvalid, "invite codes are 1 to 128 printable characters without spaces or quotes"), nil
				}
				o.codes = append(o.codes, tag[1])
			}
		}
		if len(o.codes) == 0 {
			return rejected(wisp.PrefixInvalid, "kind 9009 needs a code tag"), nil
		}
		if len(g.invites)+len(o.codes) > maxInvites {
			return rejected(wisp.PrefixBlocked, "group %q has %d invite codes, at most %d; revoke some by deleting their kind 9009 events", g.id, len(g.invites), maxInvites), nil
		}
	case kindPinList:
		need, what = capPin, "pin events"
		for _, tag := range ev.Tags {
			if len(tag) >= 2 && (tag[0] == "e" || tag[0] == "a") {
				o.pins = append(o.pins, nostr.Tag{tag[0], tag[1]})
			}
		}
		if len(o.pins) > maxPins {
			return rejected(wisp.PrefixBlocked, "at most %d pinned events", maxPins), nil
		}
	default:
		return rejected(wisp.PrefixInvalid, "kind %d is not a moderation action this relay knows (NIP-29)", ev.Kind), nil
	}
	if !self && !g.can(ev.PubKey, need) {
		roles := g.members[ev.PubKey]
		if len(roles) == 0 {
			return rejected(wisp.PrefixRestricted, "you may not %s in group %q: that needs a role you do not have", what, g.id), nil
		}
		return rejected(wisp.PrefixRestricted, "you may not %s in group %q with your roles (%s)", what, g.id, strings.Join(roles, ", ")), nil
	}
	return wisp.Accepted, o
}

// checkMetadata reads an edit-metadata into o: it replaces all of the
// group's metadata (NIP-29: the event carries every field), places the
// group under its parent tag (none: a root) and reorders its children.
func (s *Groups) checkMetadata(v view, g *group, ev *nostr.Event, o *op, self bool) wisp.Decision {
	var parents []string
	var bad string
	o.meta, parents, o.children, bad = readMeta(ev.Tags)
	if bad != "" {
		return wisp.Rejected(wisp.PrefixInvalid, bad)
	}
	// Subgroups (NIP-29): at most one parent, which exists, is no
	// descendant of the group, and whose admin the author is.
	switch {
	case len(parents) > 1:
		return rejected(wisp.PrefixInvalid, "a group has one parent at most")
	case len(parents) == 1:
		p := parents[0]
		pg := v.group(p)
		switch {
		case p == g.id:
			return rejected(wisp.PrefixInvalid, "a group cannot be its own parent")
		case pg == nil || pg.deleting:
			return rejected(wisp.PrefixInvalid, "there is no group %q to be the parent", p)
		case !self && !pg.hasRoles(ev.PubKey):
			return rejected(wisp.PrefixRestricted, "only an admin of group %q may put groups under it", p)
		}
		// Walk up from the parent; the bound keeps a corrupt tree finite.
		for a, n := pg, 0; a != nil && n <= s.cfg.MaxGroups; n++ {
			if a.id == g.id {
				return rejected(wisp.PrefixInvalid, "group %q is below %q: that parent would make a cycle", p, g.id)
			}
			if a.parent == "" {
				break
			}
			a = v.group(a.parent)
		}
		o.parent = p
	}
	// The child tags must name exactly the group's children, in the order
	// the parent's metadata will list them.
	if len(o.children) != len(g.children) || !sameSet(o.children, g.children) {
		if len(g.children) == 0 {
			return rejected(wisp.PrefixInvalid, "group %q has no subgroups: no child tags", g.id)
		}
		return rejected(wisp.PrefixInvalid, "the child tags must name every subgroup of %q: %s", g.id, strings.Join(g.children, ", "))
	}
	return wisp.Accepted
}

// readMeta reads the metadata tags of a kind 9002 or 39000: the fields,
// the parent tags and the child tags in order. bad says what is malformed.
func readMeta(tags nostr.Tags) (m meta, parents, children []string, bad string) {
	for _, tag := range tags {
		if len(tag) == 0 {
			continue
		}
		val := ""
		if len(tag) >= 2 {
			val = tag[1]
		}
		switch tag[0] {
		case "name":
			m.name = val
		case "picture":
			m.picture = val
		case "banner":
			m.banner = val
		case "about":
			m.about = val
		case "private":
			m.private = true
		case "restricted":
			m.restricted = true
		case "hidden":
			m.hidden = true
		case "closed":
			m.closed = true
		case "supported_kinds":
			if m.kindsSet {
				return m, nil, nil, "one supported_kinds tag at most"
			}
			m.kindsSet, m.kinds = true, []int{}
			for _, k := range tag[1:] {
				n, err := strconv.Atoi(k)
				if err != nil || n < 0 || n > 65535 {
					return m, nil, nil, fmt.Sprintf("supported_kinds lists kinds (0 to 65535), not %q", k)
				}
				if !slices.Contains(m.kinds, n) {
					m.kinds = append(m.kinds, n)
				}
			}
		case "parent":
			parents = append(parents, val)
		case "child":
			if !slices.Contains(children, val) {
				children = append(children, val)
			}
		}
	}
	return m, parents, children, ""
}

func sameSet(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// tagValue is the value of the first tag named name, or "".
func tagValue(tags nostr.Tags, name string) string {
	for _, tag := range tags {
		if len(tag) >= 2 && tag[0] == name {
			return tag[1]
		}
	}
	return ""
}
