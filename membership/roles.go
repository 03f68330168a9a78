package membership

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

// NIP-43 roles: a role is defined by a relay-signed kind 33534 (its d tag
// is the role's id) and given to members as extra elements of their
// member tag. NIP-86's createrole, editrole, deleterole, assignrole and
// unassignrole manage them; what a role allows is left to the operator
// (wisp grants nothing by role).

// ListRoles is the moderation list of roles given: key a member's pubkey,
// reason the role ids, space-separated. Never rename it.
const ListRoles = "nip43_roles"

// role is one role's definition, as its kind 33534 carries it.
type role struct {
	id, label, description, color, order string
}

func (r role) tags() nostr.Tags {
	tags := nostr.Tags{{"-"}, {"d", r.id}}
	for _, kv := range [][2]string{{"label", r.label}, {"description", r.description}, {"color", r.color}, {"order", r.order}} {
		if kv[1] != "" {
			tags = append(tags, nostr.Tag{kv[0], kv[1]})
		}
	}
	return tags
}

// loadRoles reads the defined roles and who has them. The caller holds mu.
func (m *Members) loadRoles(ctx context.Context) error {
	m.roles = map[string]role{}
	err := m.scan(ctx, nostr.Filter{Authors: []string{m.cfg.PublicKey}, Kinds: []int{kindRole}}, func(ev *nostr.Event) {
		r := role{id: tagValue(ev.Tags, "d"), label: tagValue(ev.Tags, "label"), description: tagValue(ev.Tags, "description"),
			color: tagValue(ev.Tags, "color"), order: tagValue(ev.Tags, "order")}
		if r.id != "" {
			m.roles[r.id] = r
		}
	})
	if err != nil {
		return fmt.Errorf("load roles: %w", err)
	}
	entries, err := m.store.ListEntries(ctx, ListRoles)
	if err != nil {
		return fmt.Errorf("load roles given: %w", err)
	}
	m.assigned = map[string][]string{}
	for _, e := range entries {
		m.assigned[e.Key] = strings.Fields(e.Reason)
	}
	return nil
}

// Manager is the NIP-86 API with membership on (cmd/wisp serves it as the
// relay's Manager): the policy's methods, with allowpubkey, unallowpubkey
// and banpubkey announcing the member changes they make, and NIP-43's role
// methods.
type Manager struct {
	m     *Members
	inner interface {
		Methods() []string
		Call(ctx context.Context, caller, method string, params []json.RawMessage) (any, error)
		Info(base wisp.RelayInfo) wisp.RelayInfo
	}
}

// Manager returns the NIP-86 API over the policy's own.
func (m *Members) Manager() *Manager { return &Manager{m: m, inner: m.admin} }

var roleMethods = []string{"createrole", "editrole", "deleterole", "assignrole", "unassignrole"}

// Methods lists the supported methods.
func (g *Manager) Methods() []string { return append(g.inner.Methods(), roleMethods...) }

// Info is the policy's.
func (g *Manager) Info(base wisp.RelayInfo) wisp.RelayInfo { return g.inner.Info(base) }

// Call runs one method.
func (g *Manager) Call(ctx context.Context, caller, method string, params []json.RawMessage) (any, error) {
	m := g.m
	switch method {
	case "supportedmethods":
		return g.Methods(), nil
	case "allowpubkey", "unallowpubkey", "banpubkey":
		m.mu.Lock()
		defer m.mu.Unlock()
		pk := paramString(params, 0)
		was := m.lists.PubkeyListed(pk) && !m.lists.PubkeyBanned(pk)
		res, err := g.inner.Call(ctx, caller, method, params)
		if err != nil {
			return res, err
		}
		now := m.lists.PubkeyListed(pk) && !m.lists.PubkeyBanned(pk)
		switch {
		case now && !was:
			m.announce(ctx, kindAddMember, pk)
		case was && !now:
			if len(m.assigned[pk]) > 0 {
				if _, err := m.store.DeleteListEntry(ctx, ListRoles, pk); err != nil {
					return nil, err
				}
				delete(m.assigned, pk)
			}
			m.announce(ctx, kindRemoveMember, pk)
		}
		return res, nil
	}
	if !slices.Contains(roleMethods, method) {
		return g.inner.Call(ctx, caller, method, params)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	res, err := m.roleCall(ctx, method, params)
	if err == nil {
		m.log.Info("management call", "method", method, "admin", caller)
	}
	return res, err
}

func badParams(method, want string) error {
	return fmt.Errorf("%w for %s: want %s", wisp.ErrBadParams, method, want)
}

// roleCall runs a role method. The caller holds mu.
func (m *Members) roleCall(ctx context.Context, method string, params []json.RawMessage) (any, error) {
	switch method {
	case "createrole", "editrole":
		r := role{id: paramString(params, 0), label: paramString(params, 1), description: paramString(params, 2),
			color: paramNumber(params, 3), order: paramNumber(params, 4)}
		if r.id == "" || len(r.id) > 64 || strings.ContainsAny(r.id, " \t\n") {
			return nil, badParams(method, "[id, label, description, color, order] with an id of 1 to 64 characters and no spaces")
		}
		if c, err := strconv.Atoi(r.color); r.color != "" && (err != nil || c < 0 || c > 360) {
			return nil, badParams(method, "a color hue from 0 to 360")
		}
		_, exists := m.roles[r.id]
		if method == "createrole" && exists {
			return nil, badParams(method, "a role id not yet defined (editrole changes one)")
		}
		if method == "editrole" && !exists {
			return nil, badParams(method, "a defined role id")
		}
		if err := m.publish(ctx, m.sign(kindRole, r.tags(), "")); err != nil {
			return nil, err
		}
		m.roles[r.id] = r
		return true, nil
	case "deleterole":
		id := paramString(params, 0)
		if _, ok := m.roles[id]; !ok {
			return nil, badParams(method, "a defined role id")
		}
		f := nostr.Filter{Authors: []string{m.cfg.PublicKey}, Kinds: []int{kindRole}, Tags: nostr.TagMap{"d": {id}}}
		if _, err := m.store.DeleteMatching(ctx, []nostr.Filter{f}); err != nil {
			return nil, fmt.Errorf("delete role: %w", err)
		}
		delete(m.roles, id)
		changed := false
		for pk, ids := range m.assigned {
			if slices.Contains(ids, id) {
				if err := m.setRoles(ctx, pk, slices.DeleteFunc(slices.Clone(ids), func(r string) bool { return r == id })); err != nil {
					return nil, err
				}
				changed = true
			}
		}
		if changed {
			return true, m.publishList(ctx)
		}
		return true, nil
	case "assignrole", "unassignrole":
		pk, id := paramString(params, 0), paramString(params, 1)
		if !nostr.IsValid32ByteHex(pk) {
			return nil, badParams(method, "[a 64-hex pubkey, a role id]")
		}
		if _, ok := m.roles[id]; !ok && method == "assignrole" {
			return nil, badParams(method, "a defined role id")
		}
		if !m.lists.PubkeyListed(pk) {
			return nil, badParams(method, "the pubkey of a member")
		}
		ids := slices.Clone(m.assigned[pk])
		has := slices.Contains(ids, id)
		switch {
		case method == "assignrole" && !has:
			ids = append(ids, id)
		case method == "unassignrole" && has:
			ids = slices.DeleteFunc(ids, func(r string) bool { return r == id })
		default:
			return true, nil // nothing changes
		}
		if err := m.setRoles(ctx, pk, ids); err != nil {
			return nil, err
		}
		return true, m.publishList(ctx)
	}
	return nil, fmt.Errorf("%w %q", wisp.ErrUnknownMethod, method)
}

// setRoles stores the roles given to pk. The caller holds mu.
func (m *Members) setRoles(ctx context.Context, pk string, ids []string) error {
	if len(ids) == 0 {
		if _, err := m.store.DeleteListEntry(ctx, ListRoles, pk); err != nil {
			return err
		}
		delete(m.assigned, pk)
		return nil
	}
	if err := m.store.PutListEntry(ctx, ListRoles, pk, strings.Join(ids, " ")); err != nil {
		return err
	}
	m.assigned[pk] = ids
	return nil
}

// paramString is params[i] as a string, or "".
func paramString(params []json.RawMessage, i int) string {
	var s string
	if i < len(params) {
		_ = json.Unmarshal(params[i], &s)
	}
	return s
}

// paramNumber is params[i], a whole number or a string, as a string ("" if
// neither).
func paramNumber(params []json.RawMessage, i int) string {
	if i >= len(params) {
		return ""
	}
	var f float64
	if json.Unmarshal(params[i], &f) == nil && f == math.Trunc(f) {
		return strconv.FormatInt(int64(f), 10)
	}
	return paramString(params, i)
}
