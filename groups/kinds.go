package groups

import (
	"slices"
	"strings"
)

// NIP-29 kinds.
const (
	kindPutUser      = 9000
	kindRemoveUser   = 9001
	kindEditMetadata = 9002
	kindDeleteEvent  = 9005
	kindCreateGroup  = 9007
	kindDeleteGroup  = 9008
	kindCreateInvite = 9009
	kindPinList      = 9010
	kindJoinRequest  = 9021
	kindLeaveRequest = 9022

	kindMetadata = 39000
	kindAdmins   = 39001
	kindMembers  = 39002
	kindRoles    = 39003
	kindPins     = 39005

	// The relay publishes 39000-39009 itself; nobody else may.
	firstStateKind = 39000
	lastStateKind  = 39009
)

// snapshotKinds are the state events the relay keeps per group, in the
// order of group.snapAt.
var snapshotKinds = []int{kindMetadata, kindAdmins, kindMembers, kindRoles, kindPins}

func snapshotIndex(kind int) int { return slices.Index(snapshotKinds, kind) }

// isModeration reports whether kind is in NIP-29's moderation range.
func isModeration(kind int) bool { return kind >= 9000 && kind <= 9020 }

// isManagement reports whether kind manages a group (moderation, join and
// leave requests): such events need an h tag and pass supported_kinds.
func isManagement(kind int) bool {
	return isModeration(kind) || kind == kindJoinRequest || kind == kindLeaveRequest
}

func isStateKind(kind int) bool { return kind >= firstStateKind && kind <= lastStateKind }

// Roles. What a role may do is the relay's policy (NIP-29); wisp has two.
// Other role names may be given by admins and grant nothing.
const (
	roleAdmin     = "admin"
	roleModerator = "moderator"
)

// capability is one thing a role lets its holder do.
type capability uint16

const (
	capAddMembers    capability = 1 << iota // put-user without roles, of a member without roles
	capRemoveMembers                        // remove-user of a member without roles
	capSetRoles                             // put-user with roles, or of a member with roles; remove-user of one
	capEditMetadata
	capDeleteEvents
	capDeleteGroup
	capCreateInvites
	capPin
)

var roleCaps = map[string]capability{
	roleAdmin:     ^capability(0),
	roleModerator: capAddMembers | capRemoveMembers | capDeleteEvents | capCreateInvites | capPin,
}

// roleDescriptions are the roles as kind 39003 lists them.
var roleDescriptions = [][2]string{
	{roleAdmin, "may do everything: edit the group, add and remove members, give roles, delete events and the group"},
	{roleModerator, "may add and remove members without roles, delete events, make invite codes and pin events"},
}

func capsOf(roles []string) capability {
	var c capability
	for _, r := range roles {
		c |= roleCaps[r]
	}
	return c
}

// validID reports whether s may name a group: 1 to 64 letters, digits,
// '-' or '_' (what clients generate; it keeps ids free of JSON escapes).
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validCode reports whether s may be an invite code: 1 to 128 printable
// ASCII characters without spaces.
func validCode(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return !strings.ContainsAny(s, `"\`)
}
