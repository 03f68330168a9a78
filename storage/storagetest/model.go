package storagetest

import (
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// model is a deliberately naive store: a map of events and the tombstones,
// changed one event at a time by the rules of storage.Store's Save. It is
// the oracle of FuzzSave, written from the contract rather than from an
// engine, so that an engine's cleverness is checked against plain code.
type model struct {
	events   map[string]*nostr.Event
	tombIDs  map[[2]string]bool // NIP-09: id, pubkey that asked
	tombAddr map[modelAddr]nostr.Timestamp
	vanished map[string]nostr.Timestamp // NIP-62: pubkey, up to
}

type modelAddr struct {
	pubkey string
	kind   int
	d      string
}

func newModel() *model {
	return &model{
		events:   map[string]*nostr.Event{},
		tombIDs:  map[[2]string]bool{},
		tombAddr: map[modelAddr]nostr.Timestamp{},
		vanished: map[string]nostr.Timestamp{},
	}
}

// address returns the address of a replaceable or addressable event.
func address(ev *nostr.Event) (modelAddr, bool) {
	switch {
	case nostr.IsReplaceableKind(ev.Kind):
		return modelAddr{ev.PubKey, ev.Kind, ""}, true
	case nostr.IsAddressableKind(ev.Kind):
		return modelAddr{ev.PubKey, ev.Kind, ev.Tags.GetD()}, true
	}
	return modelAddr{}, false
}

func isHexKey(s string) bool {
	_, err := hex.DecodeString(s)
	return len(s) == 64 && err == nil && strings.ToLower(s) == s
}

// pTags returns the pubkeys an event p-tags.
func pTags(ev *nostr.Event) []string {
	var out []string
	for _, t := range ev.Tags {
		if len(t) >= 2 && t[0] == "p" && isHexKey(t[1]) {
			out = append(out, t[1])
		}
	}
	return out
}

func (m *model) vanishedEvent(ev *nostr.Event) bool {
	if ev.Kind == 62 {
		return false
	}
	if u, ok := m.vanished[ev.PubKey]; ok && ev.CreatedAt <= u {
		return true
	}
	if ev.Kind == 1059 {
		for _, p := range pTags(ev) {
			if u, ok := m.vanished[p]; ok && ev.CreatedAt <= u {
				return true
			}
		}
	}
	return false
}

// save applies one event and returns its outcome.
func (m *model) save(ev *nostr.Event) storage.Outcome {
	if m.vanishedEvent(ev) {
		return storage.Deleted
	}
	if ev.Kind == 62 {
		// Everything of the pubkey up to the request goes (earlier
		// requests excepted), and gift wraps p-tagging it.
		for id, old := range m.events {
			if old.CreatedAt > ev.CreatedAt {
				continue
			}
			wrapsIt := false
			if old.Kind == 1059 {
				for _, t := range old.Tags {
					if len(t) >= 2 && t[0] == "p" && t[1] == ev.PubKey {
						wrapsIt = true
					}
				}
			}
			if old.PubKey == ev.PubKey && old.Kind != 62 || wrapsIt {
				delete(m.events, id)
			}
		}
		if u, ok := m.vanished[ev.PubKey]; !ok || ev.CreatedAt > u {
			m.vanished[ev.PubKey] = ev.CreatedAt
		}
	}
	if ev.Kind != 5 && m.tombIDs[[2]string{ev.ID, ev.PubKey}] {
		return storage.Deleted
	}
	if _, dup := m.events[ev.ID]; dup {
		return storage.Duplicate
	}
	if a, ok := address(ev); ok {
		if u, ok := m.tombAddr[a]; ok && ev.CreatedAt <= u {
			return storage.Deleted
		}
		for id, old := range m.events {
			if oa, ok := address(old); !ok || oa != a {
				continue
			}
			if old.CreatedAt > ev.CreatedAt || old.CreatedAt == ev.CreatedAt && old.ID < ev.ID {
				return storage.Superseded
			}
			delete(m.events, id)
		}
	}
	m.events[ev.ID] = ev
	if ev.Kind == 5 {
		m.applyDeletion(ev)
	}
	return storage.Stored
}

// applyDeletion: a kind 5 deletes its author's events that it names by id
// (never a kind 5) and the versions of its author's addresses up to its
// created_at; tombstones keep them out.
func (m *model) applyDeletion(del *nostr.Event) {
	for _, t := range del.Tags {
		if len(t) < 2 {
			continue
		}
		switch t[0] {
		case "e":
			if !isHexKey(t[1]) {
				continue
			}
			if old, ok := m.events[t[1]]; ok && old.PubKey == del.PubKey && old.Kind != 5 {
				delete(m.events, t[1])
			}
			m.tombIDs[[2]string{t[1], del.PubKey}] = true
		case "a":
			parts := strings.SplitN(t[1], ":", 3)
			if len(parts) < 2 || parts[1] != del.PubKey {
				continue
			}
			kind, err := strconv.Atoi(parts[0])
			if err != nil {
				continue
			}
			a := modelAddr{del.PubKey, kind, ""}
			switch {
			case nostr.IsReplaceableKind(kind):
			case nostr.IsAddressableKind(kind):
				if len(parts) == 3 {
					a.d = parts[2]
				}
			default:
				continue
			}
			for id, old := range m.events {
				if oa, ok := address(old); ok && oa == a && old.CreatedAt <= del.CreatedAt {
					delete(m.events, id)
				}
			}
			if u, ok := m.tombAddr[a]; !ok || del.CreatedAt > u {
				m.tombAddr[a] = del.CreatedAt
			}
		}
	}
}

// stored returns the events the model holds.
func (m *model) stored() []*nostr.Event {
	out := make([]*nostr.Event, 0, len(m.events))
	for _, ev := range m.events {
		out = append(out, ev)
	}
	return out
}
