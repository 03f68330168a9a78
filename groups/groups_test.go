package groups_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/groups"
	"github.com/wisp-relay/wisp/storage"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

// state fetches the relay's state event of kind for group gid (nil: none).
func state(c *client, tr *testRelay, kind int, gid string) *nostr.Event {
	c.T.Helper()
	evs := c.Events(nostr.Filter{Kinds: []int{kind}, Authors: []string{tr.pk}, Tags: nostr.TagMap{"d": {gid}}})
	if len(evs) == 0 {
		return nil
	}
	if len(evs) > 1 {
		c.T.Fatalf("%d state events of kind %d for %s", len(evs), kind, gid)
	}
	return &evs[0]
}

// tagged lists the second element of the tags named name.
func tagged(ev *nostr.Event, name string) []string {
	if ev == nil {
		return nil
	}
	var out []string
	for _, tag := range ev.Tags {
		if len(tag) >= 2 && tag[0] == name {
			out = append(out, tag[1])
		}
	}
	return out
}

func hasTag(ev *nostr.Event, name string) bool {
	return ev != nil && slices.ContainsFunc(ev.Tags, func(t nostr.Tag) bool { return len(t) >= 1 && t[0] == name })
}

// A group's whole life, driven by clients over websockets: create, edit,
// invite, join by code, post, moderate, restart, remove, leave, delete.
func TestGroupLife(t *testing.T) {
	tr := startRelay(t, groups.Config{}, nil)
	alice, bob, carol := newKey(t), newKey(t), newKey(t)
	a, b, c := dial(t, tr.url), dial(t, tr.url), dial(t, tr.url)

	// Alice creates the group; she is its admin, and the relay publishes
	// its state, signed by its own key.
	a.MustPublish(alice.Sign(t, 9007, h("pizza")))
	if admins := state(a, tr, 39001, "pizza"); !slices.Equal(tagged(admins, "p"), []string{alice.PK}) ||
		!slices.Equal(admins.Tags[1], nostr.Tag{"p", alice.PK, "admin"}) {
		t.Fatalf("admins %v", admins)
	}
	if roles := state(a, tr, 39003, "pizza"); !slices.Equal(tagged(roles, "role"), []string{"admin", "moderator"}) {
		t.Fatalf("roles %v", roles)
	}
	b.Refused(bob.Sign(t, 9007, h("pizza")), "blocked") // taken

	// She makes it private, restricted and closed, with an invite code.
	a.MustPublish(alice.Sign(t, 9002, h("pizza"), nostr.Tag{"name", "Pizza lovers"}, nostr.Tag{"about", "dough"},
		nostr.Tag{"private"}, nostr.Tag{"restricted"}, nostr.Tag{"closed"}))
	meta := state(a, tr, 39000, "pizza")
	if !slices.Equal(tagged(meta, "name"), []string{"Pizza lovers"}) || !hasTag(meta, "private") || !hasTag(meta, "closed") || !hasTag(meta, "restricted") {
		t.Fatalf("metadata %v", meta)
	}
	invite := alice.Sign(t, 9009, h("pizza"), nostr.Tag{"code", "margherita"})
	a.MustPublish(invite)

	// Bob may not write before joining, nor join without the code.
	b.Refused(bob.Sign(t, 9, h("pizza")), "restricted")
	b.Refused(bob.Sign(t, 9021, h("pizza")), "restricted")
	b.Refused(bob.Sign(t, 9021, h("pizza"), nostr.Tag{"code", "hawaii"}), "restricted")
	b.MustPublish(bob.Sign(t, 9021, h("pizza"), nostr.Tag{"code", "margherita"}))
	b.Refused(bob.SignAt(t, 9021, now(), "again", h("pizza"), nostr.Tag{"code", "margherita"}), "duplicate")
	b.Auth(bob)
	if members := state(b, tr, 39002, "pizza"); !slices.Equal(tagged(members, "p"), sorted(alice.PK, bob.PK)) {
		t.Fatalf("members %v", members)
	}
	// The relay answered the join with a put-user of its own.
	if put := b.Events(nostr.Filter{Kinds: []int{9000}, Authors: []string{tr.pk}, Tags: nostr.TagMap{"h": {"pizza"}}}); len(put) != 1 ||
		!slices.Equal(tagged(&put[0], "p"), []string{bob.PK}) {
		t.Fatalf("relay's put-user %v", put)
	}

	// Bob posts; Carol, who is not a member, may neither write nor read.
	hello := bob.Sign(t, 9, h("pizza"))
	b.MustPublish(hello)
	c.Refused(carol.Sign(t, 9, h("pizza")), "restricted")
	if _, why := c.Query(nostr.Filter{Tags: nostr.TagMap{"h": {"pizza"}}}); !strings.HasPrefix(why, "auth-required:") {
		t.Fatalf("carol's REQ: closed %q", why)
	}
	c.Auth(carol)
	if _, why := c.Query(nostr.Filter{Tags: nostr.TagMap{"h": {"pizza"}}}); !strings.HasPrefix(why, "restricted:") {
		t.Fatalf("carol's REQ after AUTH: closed %q", why)
	}
	if got := b.Events(nostr.Filter{Tags: nostr.TagMap{"h": {"pizza"}}, Kinds: []int{9}}); len(got) != 1 || got[0].ID != hello.ID {
		t.Fatalf("bob reads %v", ids(got))
	}

	// A restart in the middle: the state is rebuilt from the store.
	tr.restart()
	a, b, c = dial(t, tr.url), dial(t, tr.url), dial(t, tr.url)
	b.MustPublish(bob.Sign(t, 9, h("pizza")))
	c.Refused(carol.Sign(t, 9, h("pizza")), "restricted")
	c.Refused(carol.Sign(t, 9021, h("pizza")), "restricted") // still closed
	c.MustPublish(carol.Sign(t, 9021, h("pizza"), nostr.Tag{"code", "margherita"}))

	// Moderation: Bob has no role yet; Alice makes him a moderator.
	b.Refused(bob.Sign(t, 9001, h("pizza"), p(carol.PK)), "restricted")
	a.MustPublish(alice.Sign(t, 9000, h("pizza"), p(bob.PK, "moderator")))
	spam := carol.Sign(t, 9, h("pizza"))
	c.MustPublish(spam)
	b.MustPublish(bob.Sign(t, 9005, h("pizza"), nostr.Tag{"e", spam.ID}))
	a.Auth(alice)
	if got := a.Events(nostr.Filter{IDs: []string{spam.ID}}); len(got) != 0 {
		t.Fatal("deleted event still served")
	}
	// A moderator may not take roles: only admins may.
	b.Refused(bob.Sign(t, 9001, h("pizza"), p(alice.PK)), "restricted")
	b.Refused(bob.Sign(t, 9000, h("pizza"), p(carol.PK, "admin")), "restricted")
	b.MustPublish(bob.Sign(t, 9001, h("pizza"), p(carol.PK)))
	c.Refused(carol.Sign(t, 9, h("pizza")), "restricted")
	if admins := state(a, tr, 39001, "pizza"); !slices.ContainsFunc(admins.Tags, func(t nostr.Tag) bool { return slices.Equal(t, nostr.Tag{"p", bob.PK, "moderator"}) }) {
		t.Fatalf("admins %v", admins)
	}

	// Revoking the invite: deleting its create-invite event.
	a.MustPublish(alice.Sign(t, 9005, h("pizza"), nostr.Tag{"e", invite.ID}))
	c.Refused(carol.SignAt(t, 9021, now(), "let me back", h("pizza"), nostr.Tag{"code", "margherita"}), "restricted")

	// Bob leaves; the relay removes him with a remove-user of its own.
	b.MustPublish(bob.Sign(t, 9022, h("pizza")))
	b.Refused(bob.Sign(t, 9, h("pizza")), "restricted")
	if members := state(a, tr, 39002, "pizza"); !slices.Equal(tagged(members, "p"), []string{alice.PK}) {
		t.Fatalf("members after leave %v", members)
	}
	if rm := a.Events(nostr.Filter{Kinds: []int{9001}, Authors: []string{tr.pk}, Tags: nostr.TagMap{"p": {bob.PK}}}); len(rm) != 1 {
		t.Fatalf("relay's remove-user %v", rm)
	}

	// Alice deletes the group: its state goes at once, its events soon,
	// and nothing more is taken for it.
	a.MustPublish(alice.Sign(t, 9008, h("pizza")))
	if meta := state(a, tr, 39000, "pizza"); meta != nil {
		t.Fatalf("metadata of a deleted group: %v", meta)
	}
	a.Refused(alice.Sign(t, 9, h("pizza")), "blocked")
	eventually(t, "the group's events to go", func() bool {
		n, _ := a.Count(nostr.Filter{Tags: nostr.TagMap{"h": {"pizza"}}})
		return n == 0
	})
	// Then the id is free again.
	eventually(t, "the group to be forgotten", func() bool {
		return a.Publish(alice.Sign(t, 9007, h("pizza"))).OK
	})
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// Each refusal a group makes, with its NIP-01 prefix.
func TestGroupRefusals(t *testing.T) {
	tr := startRelay(t, groups.Config{MaxAge: time.Hour, MaxMembers: 2}, nil)
	alice, bob, carol, dave := newKey(t), newKey(t), newKey(t), newKey(t)
	a, b := dial(t, tr.url), dial(t, tr.url)
	a.MustPublish(alice.Sign(t, 9007, h("g")))
	first := alice.Sign(t, 9, h("g"))
	a.MustPublish(first)

	cases := []struct {
		name   string
		c      *client
		ev     *nostr.Event
		prefix string
	}{
		{"no such group", a, alice.Sign(t, 9, h("nope")), "blocked"},
		{"two h tags", a, alice.Sign(t, 9, h("g"), h("other")), "invalid"},
		{"bad group id", a, alice.Sign(t, 9, h("has space")), "invalid"},
		{"moderation without h", a, alice.Sign(t, 9000, p(bob.PK)), "invalid"},
		{"state event from a client", a, alice.Sign(t, 39000, nostr.Tag{"d", "g"}), "blocked"},
		{"unknown timeline reference", a, alice.Sign(t, 9, h("g"), nostr.Tag{"previous", first.ID[:8], "00000000"}), "invalid"},
		{"malformed timeline reference", a, alice.Sign(t, 9, h("g"), nostr.Tag{"previous", "xyz"}), "invalid"},
		{"late publication", a, alice.SignAt(t, 9, now()-2*3600, "", h("g")), "invalid"},
		{"put-user without the role", b, bob.Sign(t, 9000, h("g"), p(bob.PK)), "restricted"},
		{"edit without the role", b, bob.Sign(t, 9002, h("g"), nostr.Tag{"name", "mine"}), "restricted"},
		{"delete-group without the role", b, bob.Sign(t, 9008, h("g")), "restricted"},
		{"leave without membership", b, bob.Sign(t, 9022, h("g")), "blocked"},
		{"unknown moderation kind", a, alice.Sign(t, 9015, h("g")), "invalid"},
		{"put-user without p", a, alice.Sign(t, 9000, h("g")), "invalid"},
		{"group full", a, alice.Sign(t, 9000, h("g"), p(carol.PK), p(dave.PK)), "blocked"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := tc.c.Publish(tc.ev)
			if res.OK || !strings.HasPrefix(res.Msg, tc.prefix+":") || len(res.Msg) < len(tc.prefix)+10 {
				t.Fatalf("OK %v %q, want refused with %s: and a reason", res.OK, res.Msg, tc.prefix)
			}
		})
	}
	// A reference the relay holds passes; the relay's own events may not
	// come back from a client.
	a.MustPublish(alice.Sign(t, 9, h("g"), nostr.Tag{"previous", first.ID[:8]}))
	own := &nostr.Event{Kind: 9000, CreatedAt: nostr.Timestamp(now()), Tags: nostr.Tags{h("g"), p(bob.PK)}}
	own.Sign(tr.sk)
	b.Refused(own, "blocked")
}

// A private group's events are out of reach of non-members by every way
// of reading: REQ (by any filter, stored and live), COUNT, NIP-77 and
// search; members reach them all.
func TestPrivateGroupUnreachable(t *testing.T) {
	tr := startRelay(t, groups.Config{}, nil)
	alice, mallory := newKey(t), newKey(t)
	a, m, anon := dial(t, tr.url), dial(t, tr.url), dial(t, tr.url)
	a.MustPublish(alice.Sign(t, 9007, h("secret")))
	a.MustPublish(alice.Sign(t, 9002, h("secret"), nostr.Tag{"private"}, nostr.Tag{"hidden"}))
	a.MustPublish(alice.Sign(t, 9007, h("open")))
	secret := alice.SignAt(t, 1, now(), "the treasure map", h("secret"))
	public := alice.SignAt(t, 1, now(), "the public map", h("open"))
	a.MustPublish(secret)
	a.MustPublish(public)
	a.Auth(alice)
	m.Auth(mallory)

	for name, c := range map[string]*client{"member": a, "stranger": m, "anonymous": anon} {
		member := c == a
		for _, f := range []nostr.Filter{{Kinds: []int{1}}, {IDs: []string{secret.ID}}, {Authors: []string{alice.PK}}, {Search: "map"}, {}} {
			got, why := c.Query(f)
			if why != "" {
				t.Fatalf("%s %v: closed %q", name, f, why)
			}
			if hasID(got, secret.ID) != member {
				t.Errorf("%s REQ %v: secret served %v", name, f, hasID(got, secret.ID))
			}
			if f.IDs == nil && !hasID(got, public.ID) {
				t.Errorf("%s REQ %v: public event missing", name, f)
			}
		}
		n, why := c.Count(nostr.Filter{Kinds: []int{1}, Authors: []string{alice.PK}})
		if why != "" || (member && n != 2) || (!member && n != 1) {
			t.Errorf("%s COUNT: %d %q", name, n, why)
		}
		have, why := c.NegIDs(nostr.Filter{Kinds: []int{1}})
		if why != "" || slices.Contains(have, secret.ID) != member || !slices.Contains(have, public.ID) {
			t.Errorf("%s NIP-77: %v %q", name, have, why)
		}
		// The hidden group's metadata is for members only.
		if meta := c.Events(nostr.Filter{Kinds: []int{39000}}); slices.ContainsFunc(meta, func(e nostr.Event) bool {
			return slices.Contains(tagged(&e, "d"), "secret")
		}) != member {
			t.Errorf("%s sees the hidden group's metadata: %v", name, !member)
		}
		if _, why := c.Count(nostr.Filter{Tags: nostr.TagMap{"h": {"secret"}}}); member != (why == "") {
			t.Errorf("%s COUNT by the group's h tag: closed %q", name, why)
		}
		if _, why := c.NegIDs(nostr.Filter{Tags: nostr.TagMap{"h": {"secret"}}}); member != (why == "") {
			t.Errorf("%s NIP-77 by the group's h tag: %q", name, why)
		}
	}

	// Live: only the member gets the next secret.
	for _, c := range []*client{a, m, anon} {
		c.Send("REQ", "live", nostr.Filter{Kinds: []int{1}, Limit: 1, Since: ptr(nostr.Timestamp(now() + 1))})
		if msg := c.Next(); str(t, msg[0]) != "EOSE" {
			t.Fatalf("live REQ: %s", msg)
		}
	}
	later := alice.SignAt(t, 1, now()+2, "second secret", h("secret"))
	laterPublic := alice.SignAt(t, 1, now()+2, "second public", h("open"))
	sender := dial(t, tr.url)
	sender.MustPublish(later)
	sender.MustPublish(laterPublic)
	for _, c := range []*client{a, m, anon} {
		msg := c.Next()
		var ev nostr.Event
		if str(t, msg[0]) != "EVENT" || ev.UnmarshalJSON(msg[2]) != nil {
			t.Fatalf("live: %s", msg)
		}
		if want := map[bool]string{true: later.ID, false: laterPublic.ID}[c == a]; ev.ID != want {
			t.Errorf("live: got %s first, want %s", ev.ID, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// A group deleted just before a restart, whose events were not yet
// removed, is still refused after it, and its events go then.
func TestGroupDeletionResumesAfterRestart(t *testing.T) {
	tr := startRelay(t, groups.Config{}, nil)
	alice := newKey(t)
	a := dial(t, tr.url)
	a.MustPublish(alice.Sign(t, 9007, h("old")))
	for range 20 {
		a.MustPublish(alice.Sign(t, 9, h("old")))
	}
	tr.stop()
	// The delete-group was stored, and the relay stopped before anything
	// else happened.
	store, err := sqlite.Open(context.Background(), tr.path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	del := alice.Sign(t, 9008, h("old"))
	raw, _ := del.MarshalJSON()
	if _, err := store.Save(context.Background(), []storage.Item{{Event: del, Raw: raw}}); err != nil {
		t.Fatal(err)
	}
	store.Close()

	tr.start()
	a = dial(t, tr.url)
	a.Refused(alice.Sign(t, 9, h("old")), "blocked")
	eventually(t, "the deleted group's events to go", func() bool {
		n, _ := a.Count(nostr.Filter{Tags: nostr.TagMap{"h": {"old"}}})
		return n == 0
	})
	if meta := state(a, tr, 39000, "old"); meta != nil {
		t.Fatalf("metadata of the deleted group: %v", meta)
	}
}
