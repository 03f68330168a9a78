package groups_test

import (
	"slices"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/groups"
)

// NIP-29 subgroups: a group goes under a parent by edit-metadata; the
// parent lists its children in order, cycles and foreign parents are
// refused, and deleting a parent makes its children roots.
func TestSubgroups(t *testing.T) {
	tr := startRelay(t, groups.Config{}, nil)
	alice, bob := newKey(t), newKey(t)
	a, b := dial(t, tr.url), dial(t, tr.url)
	for _, id := range []string{"tech", "nostr", "nip29", "go"} {
		a.MustPublish(alice.Sign(t, 9007, h(id)))
	}
	b.MustPublish(bob.Sign(t, 9007, h("bobs")))

	a.MustPublish(alice.Sign(t, 9002, h("nostr"), nostr.Tag{"name", "Nostr"}, nostr.Tag{"parent", "tech"}))
	a.MustPublish(alice.Sign(t, 9002, h("go"), nostr.Tag{"parent", "tech"}))
	a.MustPublish(alice.Sign(t, 9002, h("nip29"), nostr.Tag{"parent", "nostr"}))
	if kids := tagged(state(a, tr, 39000, "tech"), "child"); !slices.Equal(kids, []string{"nostr", "go"}) {
		t.Fatalf("tech's children %v", kids)
	}
	if up := tagged(state(a, tr, 39000, "nip29"), "parent"); !slices.Equal(up, []string{"nostr"}) {
		t.Fatalf("nip29's parent %v", up)
	}

	for name, ev := range map[string]*nostr.Event{
		"cycle":            alice.Sign(t, 9002, h("tech"), nostr.Tag{"parent", "nip29"}, nostr.Tag{"child", "nostr"}, nostr.Tag{"child", "go"}),
		"own parent":       alice.Sign(t, 9002, h("go"), nostr.Tag{"parent", "go"}),
		"missing parent":   alice.Sign(t, 9002, h("go"), nostr.Tag{"parent", "nowhere"}),
		"two parents":      alice.Sign(t, 9002, h("go"), nostr.Tag{"parent", "tech"}, nostr.Tag{"parent", "nostr"}),
		"children omitted": alice.Sign(t, 9002, h("tech"), nostr.Tag{"name", "Tech"}),
		"stray child":      alice.Sign(t, 9002, h("go"), nostr.Tag{"parent", "tech"}, nostr.Tag{"child", "nostr"}),
	} {
		t.Run(name, func(t *testing.T) { a.Refused(ev, "invalid") })
	}
	// Only an admin of the parent may put a group under it.
	b.Refused(bob.Sign(t, 9002, h("bobs"), nostr.Tag{"parent", "tech"}), "restricted")

	// Reordering the children, then moving one to another parent.
	a.MustPublish(alice.Sign(t, 9002, h("tech"), nostr.Tag{"name", "Tech"}, nostr.Tag{"child", "go"}, nostr.Tag{"child", "nostr"}))
	if kids := tagged(state(a, tr, 39000, "tech"), "child"); !slices.Equal(kids, []string{"go", "nostr"}) {
		t.Fatalf("reordered children %v", kids)
	}
	a.MustPublish(alice.Sign(t, 9002, h("go"), nostr.Tag{"parent", "nostr"}))
	if kids := tagged(state(a, tr, 39000, "tech"), "child"); !slices.Equal(kids, []string{"nostr"}) {
		t.Fatalf("tech's children after the move %v", kids)
	}
	if kids := tagged(state(a, tr, 39000, "nostr"), "child"); !slices.Equal(kids, []string{"nip29", "go"}) {
		t.Fatalf("nostr's children after the move %v", kids)
	}

	// The tree survives a restart; deleting nostr makes its children roots.
	tr.restart()
	a = dial(t, tr.url)
	a.MustPublish(alice.Sign(t, 9008, h("nostr")))
	for _, id := range []string{"nip29", "go"} {
		if up := tagged(state(a, tr, 39000, id), "parent"); len(up) != 0 {
			t.Fatalf("%s still has parent %v", id, up)
		}
	}
	if kids := tagged(state(a, tr, 39000, "tech"), "child"); len(kids) != 0 {
		t.Fatalf("tech's children after deleting nostr %v", kids)
	}
}

// NIP-11 says the relay speaks NIP-29 with subgroups, and names its key.
func TestGroupsInNIP11(t *testing.T) {
	tr := startRelay(t, groups.Config{}, nil)
	doc := nip11(t, tr)
	if !slices.Contains(doc.NIPs, 29) || doc.Self != tr.pk || !doc.NIP29["subgroups"] {
		t.Fatalf("NIP-11 %+v", doc)
	}
}
