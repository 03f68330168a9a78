package membership

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// The member list (kind 13534) names every member of the allow list with
// the roles given to it. It is replaceable, so each one the relay signs is
// newer than the last, even within a second.

// listTags are the tags of the member list the allow list makes now. The
// caller holds mu.
func (m *Members) listTags() nostr.Tags {
	tags := nostr.Tags{{"-"}}
	for _, pk := range m.lists.AllowedPubkeys() {
		if m.lists.PubkeyBanned(pk) {
			continue
		}
		tags = append(tags, append(nostr.Tag{"member", pk}, m.assigned[pk]...))
	}
	return tags
}

// publishList signs and publishes a new member list. The caller holds mu.
func (m *Members) publishList(ctx context.Context) error {
	at := max(nostr.Timestamp(time.Now().Unix()), m.listAt+1)
	ev := signAt(m.cfg.SecretKey, kindMemberList, at, m.listTags(), "")
	if err := m.publish(ctx, ev); err != nil {
		return fmt.Errorf("publish the member list: %w", err)
	}
	m.listAt = at
	return nil
}

// announce publishes an add or remove event for pk and the new member
// list. A failure is logged: the member is added or removed all the same,
// and the next start publishes the list again. The caller holds mu.
func (m *Members) announce(ctx context.Context, kind int, pk string) {
	if err := m.publish(ctx, m.sign(kind, nostr.Tags{{"-"}, {"p", pk}}, "")); err != nil {
		m.log.Error("announce a member change", "kind", kind, "pubkey", pk, "err", err)
	}
	if err := m.publishList(ctx); err != nil {
		m.log.Error("announce a member change", "err", err)
	}
}

// lastList is the newest member list the relay signed, or nil.
func (m *Members) lastList(ctx context.Context) (*nostr.Event, error) {
	var last *nostr.Event
	err := m.scan(ctx, nostr.Filter{Authors: []string{m.cfg.PublicKey}, Kinds: []int{kindMemberList}, Limit: 1}, func(ev *nostr.Event) {
		last = ev
	})
	if err != nil {
		return nil, fmt.Errorf("read the member list: %w", err)
	}
	return last, nil
}

// scan calls fn with every stored event matching f.
func (m *Members) scan(ctx context.Context, f nostr.Filter, fn func(*nostr.Event)) error {
	return m.store.Scan(ctx, []nostr.Filter{f}, func(raw []byte) error {
		var ev nostr.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return fmt.Errorf("stored event: %w", err)
		}
		fn(&ev)
		return nil
	})
}

func equalTags(a, b nostr.Tags) bool {
	return slices.EqualFunc(a, b, func(x, y nostr.Tag) bool { return slices.Equal(x, y) })
}
