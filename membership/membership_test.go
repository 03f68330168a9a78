package membership_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/internal/wstest"
	"github.com/wisp-relay/wisp/membership"
	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/relay"
	"github.com/wisp-relay/wisp/storage/sqlite"
)

type (
	key    = wstest.Key
	client = wstest.Client
)

var (
	newKey = wstest.NewKey
	dial   = wstest.Dial
	now    = wstest.Now
)

// testRelay is a real relay with membership on, over a real SQLite file:
// the policy (WISP_AUTH and the allow list), the NIP-86 admin and the
// membership wired as cmd/wisp wires them. restart starts a new one over
// the same file.
type testRelay struct {
	t       *testing.T
	path    string
	auth    wisp.AuthMode
	fixed   []string // WISP_ALLOW_PUBKEYS
	admins  []string
	cfg     membership.Config
	relay   *relay.Relay
	store   *sqlite.Store
	srv     *httptest.Server
	url     string
	members *membership.Members
	pk      string
}

func startRelay(t *testing.T, auth wisp.AuthMode, fixed, admins []string, cfg membership.Config) *testRelay {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	cfg.SecretKey, cfg.PublicKey, cfg.Admins = sk, pk, admins
	if cfg.InviteTTL == 0 {
		cfg.InviteTTL = time.Hour
	}
	if cfg.MaxMembers == 0 {
		cfg.MaxMembers = 100
	}
	tr := &testRelay{t: t, path: filepath.Join(t.TempDir(), "wisp.db"), auth: auth, fixed: fixed, admins: admins, cfg: cfg, pk: pk}
	tr.start()
	t.Cleanup(tr.stop)
	return tr
}

func (tr *testRelay) start() {
	t := tr.t
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, tr.path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lists := policy.NewLists(tr.fixed, nil, nil, nil)
	admin := policy.NewAdmin(lists, store, store, nil)
	if err := admin.Load(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := membership.New(tr.cfg, lists, admin, store)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.New(policy.Config{Auth: tr.auth}, lists)
	if err != nil {
		t.Fatal(err)
	}
	r := relay.New(relay.Config{Limits: relay.DefaultLimits(), Version: "test", Policy: pol,
		Info: relay.Info{Self: tr.pk}, Membership: m, Manager: m.Manager(), AdminPubkeys: tr.admins}, store)
	r.Start()
	if err := m.Start(ctx, r.PublishOwn); err != nil {
		t.Fatal(err)
	}
	tr.relay, tr.store, tr.members = r, store, m
	tr.srv = httptest.NewServer(r)
	tr.url = "ws" + strings.TrimPrefix(tr.srv.URL, "http")
}

func (tr *testRelay) stop() {
	if tr.relay == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.relay.Shutdown(ctx); err != nil {
		tr.t.Errorf("shutdown: %v", err)
	}
	tr.srv.Close()
	tr.store.Close()
	tr.relay = nil
}

func (tr *testRelay) restart() { tr.t.Helper(); tr.stop(); tr.start() }

// memberList is the newest member list the relay signed: pubkey -> roles.
func memberList(t *testing.T, c *client, tr *testRelay) map[string][]string {
	t.Helper()
	evs := c.Events(nostr.Filter{Kinds: []int{13534}, Authors: []string{tr.pk}})
	if len(evs) != 1 {
		t.Fatalf("%d member lists", len(evs))
	}
	ev := evs[0]
	if ok, _ := ev.CheckSignature(); !ok || !slices.ContainsFunc(ev.Tags, func(tg nostr.Tag) bool { return slices.Equal(tg, nostr.Tag{"-"}) }) {
		t.Fatalf("member list %v: bad signature or no [\"-\"] tag", ev)
	}
	out := map[string][]string{}
	for _, tag := range ev.Tags {
		if len(tag) >= 2 && tag[0] == "member" {
			out[tag[1]] = tag[2:]
		}
	}
	return out
}

// relayEvents are the relay's own events of kind naming pk.
func relayEvents(c *client, tr *testRelay, kind int, pk string) []nostr.Event {
	return c.Events(nostr.Filter{Kinds: []int{kind}, Authors: []string{tr.pk}, Tags: nostr.TagMap{"p": {pk}}})
}

// inviteCode asks for an invite (a REQ for kind 28935) and returns the
// code, or the CLOSED reason.
func inviteCode(t *testing.T, c *client, tr *testRelay) (string, string) {
	t.Helper()
	evs, why := c.Query(nostr.Filter{Kinds: []int{28935}})
	if why != "" {
		return "", why
	}
	if len(evs) != 1 || evs[0].PubKey != tr.pk || evs[0].Kind != 28935 {
		t.Fatalf("invite events %v", evs)
	}
	if ok, _ := evs[0].CheckSignature(); !ok {
		t.Fatal("invite event badly signed")
	}
	for _, tag := range evs[0].Tags {
		if len(tag) >= 2 && tag[0] == "claim" {
			return tag[1], ""
		}
	}
	t.Fatalf("invite event without a claim tag: %v", evs[0])
	return "", ""
}

func join(t *testing.T, k key, code string) *nostr.Event {
	return k.SignAt(t, 28934, now(), "", nostr.Tag{"-"}, nostr.Tag{"claim", code})
}

// NIP-43 from claim to member to leave, with WISP_AUTH=write: the OK
// answers are worded exactly as the NIP words them.
func TestJoinByInviteThenLeave(t *testing.T) {
	alice, bob, carol := newKey(t), newKey(t), newKey(t)
	tr := startRelay(t, wisp.AuthWrite, []string{alice.PK}, nil, membership.Config{RelayURL: "wss://club.example.com"})
	a, b, c := dial(t, tr.url), dial(t, tr.url), dial(t, tr.url)

	if got := memberList(t, a, tr); len(got) != 1 || got[alice.PK] == nil && !hasKey(got, alice.PK) {
		t.Fatalf("first member list %v, want alice from the allow list", got)
	}
	// Not a member: bob may not write, nor get an invite code.
	b.Refused(bob.Sign(t, 1), "auth-required")
	if _, why := inviteCode(t, b, tr); !strings.HasPrefix(why, "auth-required:") {
		t.Fatalf("unauthenticated invite request: %q", why)
	}
	b.Auth(bob)
	b.Refused(bob.Sign(t, 1), "restricted")
	if _, why := inviteCode(t, b, tr); !strings.HasPrefix(why, "restricted:") {
		t.Fatalf("non-member's invite request: %q", why)
	}
	// A join request is protected (NIP-70): its author authenticates.
	c.Refused(join(t, carol, "whatever"), "auth-required")

	a.Auth(alice)
	code, why := inviteCode(t, a, tr)
	if why != "" {
		t.Fatalf("member's invite request: %q", why)
	}
	for _, tc := range []struct {
		ev   *nostr.Event
		ok   bool
		want string
	}{
		{join(t, bob, "not-a-code"), false, "restricted: that is an invalid invite code."},
		{bob.SignAt(t, 28934, now()-3600, "", nostr.Tag{"-"}, nostr.Tag{"claim", code}), false, "restricted: a membership request must be made now"},
		{join(t, bob, code), true, "info: welcome to wss://club.example.com!"},
		{bob.SignAt(t, 28934, now(), "again", nostr.Tag{"-"}, nostr.Tag{"claim", code}), true, "duplicate: you are already a member of this relay."},
	} {
		res := b.Publish(tc.ev)
		if res.OK != tc.ok || !strings.HasPrefix(res.Msg, tc.want) {
			t.Fatalf("claim: OK %v %q, want %v %q", res.OK, res.Msg, tc.ok, tc.want)
		}
	}
	if len(relayEvents(a, tr, 8000, bob.PK)) != 1 || !hasKey(memberList(t, a, tr), bob.PK) {
		t.Fatal("bob's joining was not announced (kind 8000, kind 13534)")
	}
	b.MustPublish(bob.Sign(t, 1))

	// The code admitted one member: carol cannot use it again.
	c.Auth(carol)
	if res := c.Publish(join(t, carol, code)); res.OK || res.Msg != "restricted: that is an invalid invite code." {
		t.Fatalf("second use of a code: %+v", res)
	}
	// An expired code, minted as `wisp invite` mints, with the relay running.
	old, err := membership.MintInvite(context.Background(), tr.store, membership.OperatorMinter, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if res := c.Publish(join(t, carol, old)); res.OK || res.Msg != "restricted: that invite code is expired." {
		t.Fatalf("expired code: %+v", res)
	}
	fresh, err := membership.MintInvite(context.Background(), tr.store, membership.OperatorMinter, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	// A restart keeps members and codes.
	tr.restart()
	a, b, c = dial(t, tr.url), dial(t, tr.url), dial(t, tr.url)
	if got := memberList(t, a, tr); !hasKey(got, alice.PK) || !hasKey(got, bob.PK) || len(got) != 2 {
		t.Fatalf("member list after restart %v", got)
	}
	if n, _ := a.Count(nostr.Filter{Kinds: []int{13534}, Authors: []string{tr.pk}}); n != 1 {
		t.Fatalf("%d member lists after restart", n)
	}
	b.Auth(bob)
	b.MustPublish(bob.Sign(t, 1))
	c.Auth(carol)
	if res := c.Publish(join(t, carol, fresh)); !res.OK {
		t.Fatalf("code minted before the restart: %+v", res)
	}

	// Leaving: bob goes, alice (listed by the operator) cannot.
	if res := b.Publish(bob.SignAt(t, 28936, now(), "", nostr.Tag{"-"})); !res.OK {
		t.Fatalf("leave: %+v", res)
	}
	b.Refused(bob.Sign(t, 1), "restricted")
	if got := memberList(t, a, tr); hasKey(got, bob.PK) {
		t.Fatalf("member list after bob left %v", got)
	}
	if len(relayEvents(a, tr, 8001, bob.PK)) != 1 {
		t.Fatal("bob's leaving was not announced (kind 8001)")
	}
	a.Auth(alice)
	a.Refused(alice.SignAt(t, 28936, now(), "", nostr.Tag{"-"}), "restricted")
	// The relay's own kinds come from the relay only.
	a.Refused(alice.Sign(t, 13534, nostr.Tag{"-"}, nostr.Tag{"member", alice.PK}), "blocked")
	a.Refused(alice.Sign(t, 8000, nostr.Tag{"-"}, nostr.Tag{"p", alice.PK}), "blocked")
}

func hasKey(m map[string][]string, k string) bool { _, ok := m[k]; return ok }

// With WISP_AUTH=all a non-member reads nothing, yet may ask to join; once
// a member, reads.
func TestJoinPrivateRelay(t *testing.T) {
	alice, bob := newKey(t), newKey(t)
	tr := startRelay(t, wisp.AuthAll, []string{alice.PK}, nil, membership.Config{})
	a, b := dial(t, tr.url), dial(t, tr.url)
	a.Auth(alice)
	note := alice.Sign(t, 1)
	a.MustPublish(note)
	code, why := inviteCode(t, a, tr)
	if why != "" {
		t.Fatal(why)
	}
	b.Auth(bob)
	if _, why := b.Query(nostr.Filter{Kinds: []int{1}}); !strings.HasPrefix(why, "restricted:") {
		t.Fatalf("non-member's REQ: %q", why)
	}
	if res := b.Publish(join(t, bob, code)); !res.OK || res.Msg != "info: welcome to this relay!" {
		t.Fatalf("claim: %+v", res)
	}
	if got := b.Events(nostr.Filter{Kinds: []int{1}}); !wstest.HasID(got, note.ID) {
		t.Fatalf("new member reads %v", wstest.IDs(got))
	}
}

// Invite codes over NIP-43 for admins only; and a member may hold a bounded
// number of unused codes.
func TestInviteRequests(t *testing.T) {
	admin, alice := newKey(t), newKey(t)
	only := startRelay(t, wisp.AuthWrite, []string{alice.PK}, []string{admin.PK}, membership.Config{AdminsOnly: true})
	a, ad := dial(t, only.url), dial(t, only.url)
	a.Auth(alice)
	if _, why := inviteCode(t, a, only); !strings.HasPrefix(why, "restricted:") {
		t.Fatalf("member asking an admins-only relay: %q", why)
	}
	ad.Auth(admin)
	if _, why := inviteCode(t, ad, only); why != "" {
		t.Fatalf("admin: %q", why)
	}

	tr := startRelay(t, wisp.AuthWrite, []string{alice.PK}, nil, membership.Config{})
	a = dial(t, tr.url)
	a.Auth(alice)
	seen := map[string]bool{}
	for range 10 {
		code, why := inviteCode(t, a, tr)
		if why != "" || seen[code] {
			t.Fatalf("invite: %q %q", code, why)
		}
		seen[code] = true
	}
	if _, why := inviteCode(t, a, tr); !strings.HasPrefix(why, "rate-limited:") {
		t.Fatalf("11th unused code: %q", why)
	}
	// A REQ that asks for more than invites is served without one.
	if evs, why := a.Query(nostr.Filter{Kinds: []int{28935, 1}}); why != "" || len(evs) != 0 {
		t.Fatalf("mixed REQ: %v %q", evs, why)
	}
}

// NIP-86 with membership on: allowpubkey and unallowpubkey add and remove
// members (announced), and the role methods define roles (kind 33534) and
// give them (in the member list).
func TestManagementOfMembers(t *testing.T) {
	admin, bob := newKey(t), newKey(t)
	tr := startRelay(t, wisp.AuthWrite, nil, []string{admin.PK}, membership.Config{})
	httpURL := strings.Replace(tr.url, "ws", "http", 1)
	call := func(method string, params ...any) json.RawMessage {
		t.Helper()
		res, errMsg, status := wstest.RPC(t, httpURL, admin, method, params...)
		if status != http.StatusOK || errMsg != "" {
			t.Fatalf("%s: HTTP %d %q", method, status, errMsg)
		}
		return res
	}
	var methods []string
	json.Unmarshal(call("supportedmethods"), &methods)
	for _, m := range []string{"allowpubkey", "createrole", "editrole", "deleterole", "assignrole", "unassignrole"} {
		if !slices.Contains(methods, m) {
			t.Errorf("supportedmethods lacks %s", m)
		}
	}
	c := dial(t, tr.url)
	call("allowpubkey", bob.PK, "a friend")
	if !hasKey(memberList(t, c, tr), bob.PK) || len(relayEvents(c, tr, 8000, bob.PK)) != 1 {
		t.Fatal("allowpubkey was not announced")
	}
	call("createrole", "gardener", "Gardener", "tends the garden", 120, 1)
	roles := c.Events(nostr.Filter{Kinds: []int{33534}, Authors: []string{tr.pk}, Tags: nostr.TagMap{"d": {"gardener"}}})
	if len(roles) != 1 || !slices.ContainsFunc(roles[0].Tags, func(tg nostr.Tag) bool { return slices.Equal(tg, nostr.Tag{"color", "120"}) }) {
		t.Fatalf("role event %v", roles)
	}
	call("assignrole", bob.PK, "gardener")
	if got := memberList(t, c, tr)[bob.PK]; !slices.Equal(got, []string{"gardener"}) {
		t.Fatalf("bob's roles %v", got)
	}
	if _, errMsg, _ := wstest.RPC(t, httpURL, admin, "assignrole", bob.PK, "nobody"); !strings.Contains(errMsg, "invalid params") {
		t.Fatalf("assigning an undefined role: %q", errMsg)
	}
	call("deleterole", "gardener")
	if got := memberList(t, c, tr)[bob.PK]; len(got) != 0 {
		t.Fatalf("bob's roles after deleterole %v", got)
	}
	call("unallowpubkey", bob.PK)
	if hasKey(memberList(t, c, tr), bob.PK) || len(relayEvents(c, tr, 8001, bob.PK)) != 1 {
		t.Fatal("unallowpubkey was not announced")
	}
	c.Auth(bob)
	c.Refused(bob.Sign(t, 1), "restricted")
}
