package groups

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
)

// Who may read what (the relay's ReadGuard, relay/keeper.go):
//
//   - a private group's events (h-tagged) only its members, and so its
//     member list (kind 39002);
//   - a hidden group's state events (39000-39005) only its members;
//   - a group being deleted nothing at all.
//
// Everything else is for everyone. Viewers are the pubkeys a connection
// authenticated as; one member among them is enough.

// ReadRefusal refuses a REQ, COUNT or NEG-OPEN that has a filter whose h
// tags name only groups viewers may not read, so that a client learns to
// authenticate (auth-required:) or that it is not a member (restricted:)
// rather than seeing an empty group.
func (s *Groups) ReadRefusal(filters []nostr.Filter, viewers wisp.Pubkeys) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := range filters {
		hs := filters[i].Tags["h"]
		if len(hs) == 0 {
			continue
		}
		var why string
		for _, id := range hs {
			g := s.groups[id]
			switch {
			case g == nil || g.readable(viewers):
				why = ""
			case g.deleting:
				why = wisp.Reason(wisp.PrefixBlocked, "group "+quote(id)+" was deleted")
			case len(viewers) == 0:
				why = wisp.Reason(wisp.PrefixAuthRequired, "group "+quote(id)+" is private: authenticate as one of its members")
			default:
				why = wisp.Reason(wisp.PrefixRestricted, "group "+quote(id)+" is private: only its members may read it")
			}
			if why == "" {
				break // this filter asks for something viewers may read
			}
		}
		if why != "" {
			return why
		}
	}
	return ""
}

// Hidden returns filters matching what viewers may not see among what
// filters match: each filter narrowed to the h tags of the groups they
// may not read, and to the state events of the groups hidden from them.
func (s *Groups) Hidden(filters []nostr.Filter, viewers wisp.Pubkeys) []nostr.Filter {
	var private, hidden, members []string
	s.mu.RLock()
	for id, g := range s.groups {
		if !g.readable(viewers) {
			private = append(private, id)
		}
		if !g.snapshotReadable(kindMetadata, viewers) {
			hidden = append(hidden, id)
		}
		if !g.snapshotReadable(kindMembers, viewers) {
			members = append(members, id)
		}
	}
	s.mu.RUnlock()
	if len(private) == 0 && len(hidden) == 0 && len(members) == 0 {
		return nil
	}
	slices.Sort(private)
	slices.Sort(hidden)
	slices.Sort(members)
	var out []nostr.Filter
	for _, f := range filters {
		if g, ok := narrow(f, "h", private); ok {
			out = append(out, g)
		}
		if f.Authors != nil && !slices.Contains(f.Authors, s.cfg.PublicKey) {
			continue // the filter asks for no state event
		}
		for _, part := range []struct {
			kinds []int
			ids   []string
		}{{[]int{kindMetadata, kindAdmins, kindRoles, kindPins}, hidden}, {[]int{kindMembers}, members}} {
			kinds := part.kinds
			if f.Kinds != nil {
				kinds = slices.DeleteFunc(slices.Clone(part.kinds), func(k int) bool { return !slices.Contains(f.Kinds, k) })
			}
			if len(kinds) == 0 {
				continue
			}
			sf := f
			sf.Kinds, sf.Authors = kinds, []string{s.cfg.PublicKey}
			if g, ok := narrow(sf, "d", part.ids); ok {
				out = append(out, g)
			}
		}
	}
	return out
}

// narrow returns f limited to events whose tag name has one of values, or
// false when f can match none of them.
func narrow(f nostr.Filter, name string, values []string) (nostr.Filter, bool) {
	if len(values) == 0 {
		return f, false
	}
	if want, ok := f.Tags[name]; ok {
		values = slices.DeleteFunc(slices.Clone(values), func(v string) bool { return !slices.Contains(want, v) })
		if len(values) == 0 {
			return f, false
		}
	}
	tags := maps.Clone(f.Tags)
	if tags == nil {
		tags = nostr.TagMap{}
	}
	tags[name] = values
	f.Tags = tags
	return f, true
}

// VisibleRaw reports whether viewers may see a stored event, read from its
// canonical JSON without decoding it.
func (s *Groups) VisibleRaw(raw []byte, viewers wisp.Pubkeys) bool {
	kind, pubkey, ok := rawHead(raw)
	if !ok {
		var ev nostr.Event
		if json.Unmarshal(raw, &ev) != nil {
			return false
		}
		return s.visible(&ev, viewers)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if snapshotIndex(kind) >= 0 && pubkey == s.cfg.PublicKey {
		if g := s.groups[rawTagValue(raw, tagD)]; g != nil && !g.snapshotReadable(kind, viewers) {
			return false
		}
	}
	visible := true
	rawTagValues(raw, tagH, func(id string) bool {
		if g := s.groups[id]; g != nil && !g.readable(viewers) {
			visible = false
		}
		return visible
	})
	return visible
}

// LiveVisibility returns nil when everyone may see ev, else the check of
// who may, made when each subscription gets it.
func (s *Groups) LiveVisibility(ev *nostr.Event) func(wisp.Pubkeys) bool {
	guarded := snapshotIndex(ev.Kind) >= 0 && ev.PubKey == s.cfg.PublicKey
	for _, tag := range ev.Tags {
		if len(tag) >= 2 && tag[0] == "h" {
			guarded = true
		}
	}
	if !guarded {
		return nil
	}
	return func(viewers wisp.Pubkeys) bool { return s.visible(ev, viewers) }
}

// visible reports whether viewers may see ev.
func (s *Groups) visible(ev *nostr.Event, viewers wisp.Pubkeys) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if snapshotIndex(ev.Kind) >= 0 && ev.PubKey == s.cfg.PublicKey {
		if g := s.groups[tagValue(ev.Tags, "d")]; g != nil && !g.snapshotReadable(ev.Kind, viewers) {
			return false
		}
	}
	for _, tag := range ev.Tags {
		if len(tag) >= 2 && tag[0] == "h" {
			if g := s.groups[tag[1]]; g != nil && !g.readable(viewers) {
				return false
			}
		}
	}
	return true
}

// Canonical JSON, as the relay stores it, starts
// {"id":"<64 hex>","pubkey":"<64 hex>","created_at":N,"kind":N,"tags":[...
// and no string inside it holds an unescaped quote, so `["h","` can only
// start an h tag.
var (
	tagH       = []byte(`["h","`)
	tagD       = []byte(`["d","`)
	pubkeyKey  = []byte(`","pubkey":"`)
	kindMarker = []byte(`,"kind":`)
)

// rawHead reads the kind and pubkey of canonical event JSON.
func rawHead(raw []byte) (kind int, pubkey string, ok bool) {
	const pkAt = len(`{"id":"`) + 64
	if len(raw) < pkAt+len(pubkeyKey)+64 || !bytes.Equal(raw[pkAt:pkAt+len(pubkeyKey)], pubkeyKey) {
		return 0, "", false
	}
	pubkey = string(raw[pkAt+len(pubkeyKey) : pkAt+len(pubkeyKey)+64])
	i := bytes.Index(raw, kindMarker)
	if i < 0 {
		return 0, "", false
	}
	rest := raw[i+len(kindMarker):]
	n := 0
	for n < len(rest) && n < 6 && rest[n] >= '0' && rest[n] <= '9' {
		kind = kind*10 + int(rest[n]-'0')
		n++
	}
	return kind, pubkey, n > 0
}

// rawTagValues calls fn with the value of each tag that starts with
// marker, until fn returns false. A value with an escape cannot name a
// group, so it is passed as "".
func rawTagValues(raw, marker []byte, fn func(string) bool) {
	for {
		i := bytes.Index(raw, marker)
		if i < 0 {
			return
		}
		raw = raw[i+len(marker):]
		end := bytes.IndexByte(raw, '"')
		if end < 0 {
			return
		}
		v := raw[:end]
		if bytes.IndexByte(v, '\\') >= 0 {
			v = nil
		}
		if !fn(string(v)) {
			return
		}
		raw = raw[end:]
	}
}

// rawTagValue is the value of the first tag starting with marker, or "".
func rawTagValue(raw, marker []byte) string {
	var out string
	rawTagValues(raw, marker, func(v string) bool { out = v; return false })
	return out
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }
