// Package membership is NIP-43, relay access metadata and requests: the
// relay's members are its allow list (package policy: WISP_ALLOW_PUBKEYS
// and the pubkeys added since), users join with single-use, expiring
// invite codes (kind 28934 with a claim tag) that members or admins ask
// the relay for (a REQ for kind 28935) or that `wisp invite` mints, and
// leave with kind 28936. Each change is announced by an add or remove
// event (8000, 8001) and a new member list (13534), signed by the relay's
// own key. NIP-86's allowpubkey and unallowpubkey add and remove members
// the same way, and its role methods define NIP-43 roles (33534) and give
// them to members.
//
// The relay hands requests to a *Members (it meets relay.Membership; see
// relay/membership.go); cmd/wisp wires it.
package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/storage"
)

// NIP-43 kinds.
const (
	kindAddMember     = 8000
	kindRemoveMember  = 8001
	kindMemberList    = 13534
	kindJoinRequest   = 28934
	kindInviteRequest = 28935
	kindLeaveRequest  = 28936
	kindRole          = 33534
)

// requestWindow is how far a join or leave request's created_at may be
// from now ("now, plus or minus a few minutes").
const requestWindow = 10 * time.Minute

// Config is how the relay runs membership.
type Config struct {
	// SecretKey signs the relay's events; PublicKey is its pubkey.
	SecretKey, PublicKey string
	// RelayURL is named in the welcome ("" : "this relay").
	RelayURL string
	// AdminsOnly: only Admins get invite codes over NIP-43; otherwise every
	// member does.
	AdminsOnly bool
	Admins     []string
	// InviteTTL is how long a code minted over NIP-43 stays valid.
	InviteTTL time.Duration
	// MaxMembers bounds the members that joining by invite can make; the
	// operator's own additions are not bound.
	MaxMembers int
	Logger     *slog.Logger // nil: discard
}

// Store is what membership needs of the store: the moderation lists
// (invite codes, roles given), reading its own events back, and removing
// a deleted role's definition.
type Store interface {
	storage.Store
	storage.Moderation
	storage.Eraser
}

// Members is one relay's membership.
type Members struct {
	cfg   Config
	lists *policy.Lists
	admin *policy.Admin
	store Store
	log   *slog.Logger

	// mu serializes changes, so that member lists are published in order.
	mu       sync.Mutex
	publish  func(context.Context, *nostr.Event) error // set by Start
	invites  map[string]invite
	roles    map[string]role     // defined roles by id (kind 33534)
	assigned map[string][]string // pubkey -> role ids
	listAt   nostr.Timestamp     // created_at of the last member list
}

// New returns the membership of a relay whose allow list is lists, changed
// through admin. It makes the allow list hold even while empty: only
// members write.
func New(cfg Config, lists *policy.Lists, admin *policy.Admin, store Store) (*Members, error) {
	if !nostr.IsValid32ByteHex(cfg.PublicKey) || cfg.SecretKey == "" {
		return nil, errors.New("membership needs the relay's key")
	}
	if cfg.InviteTTL <= 0 || cfg.MaxMembers <= 0 {
		return nil, errors.New("membership needs InviteTTL and MaxMembers")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lists.RequireListed()
	return &Members{cfg: cfg, lists: lists, admin: admin, store: store, log: log,
		invites: map[string]invite{}, roles: map[string]role{}, assigned: map[string][]string{}}, nil
}

// Start loads the codes, the roles and the last member list, and publishes
// a new list through publish (the relay's PublishOwn) when the allow list
// changed meanwhile (WISP_ALLOW_PUBKEYS edited, or a change whose list was
// not published before a stop).
func (m *Members) Start(ctx context.Context, publish func(context.Context, *nostr.Event) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.publish = publish
	inv, err := loadInvites(ctx, m.store)
	if err != nil {
		return err
	}
	m.invites = inv
	if err := m.loadRoles(ctx); err != nil {
		return err
	}
	last, err := m.lastList(ctx)
	if err != nil {
		return err
	}
	if last != nil {
		m.listAt = last.CreatedAt
	}
	if want := m.listTags(); last == nil || !equalTags(last.Tags, want) {
		return m.publishList(ctx)
	}
	return nil
}

// Request answers a join (28934) or leave (28936) request.
func (m *Members) Request(ctx context.Context, in *wisp.Input) (bool, string) {
	ev := in.Event
	if d := time.Since(ev.CreatedAt.Time()); d > requestWindow || d < -requestWindow {
		return false, wisp.Reason(wisp.PrefixRestricted, "a membership request must be made now: its created_at is more than ten minutes away.")
	}
	if !in.Authed.Has(ev.PubKey) {
		return false, wisp.Reason(wisp.PrefixAuthRequired, "authenticate as the pubkey that makes the request.")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ev.Kind == kindLeaveRequest {
		return m.leave(ctx, ev)
	}
	return m.join(ctx, ev)
}

func (m *Members) join(ctx context.Context, ev *nostr.Event) (bool, string) {
	pk := ev.PubKey
	code := tagValue(ev.Tags, "claim")
	switch {
	case m.lists.PubkeyBanned(pk):
		return false, wisp.Reason(wisp.PrefixRestricted, "this pubkey is banned from this relay.")
	case m.lists.PubkeyListed(pk):
		return true, wisp.Reason(wisp.PrefixDuplicate, "you are already a member of this relay.")
	case code == "":
		return false, wisp.Reason(wisp.PrefixRestricted, "a join request needs a claim tag with an invite code.")
	}
	iv, ok := m.invites[code]
	if !ok { // minted by `wisp invite` since the codes were read?
		if inv, err := loadInvites(ctx, m.store); err == nil {
			m.invites = inv
			iv, ok = inv[code]
		} else {
			m.log.Error("load invite codes", "err", err)
			return false, wisp.InternalError
		}
	}
	switch {
	case !ok:
		return false, wisp.Reason(wisp.PrefixRestricted, "that is an invalid invite code.")
	case !time.Now().Before(iv.expires):
		m.forgetInvite(ctx, code)
		return false, wisp.Reason(wisp.PrefixRestricted, "that invite code is expired.")
	case len(m.lists.AllowedPubkeys()) >= m.cfg.MaxMembers:
		return false, wisp.Reason(wisp.PrefixRestricted, "this relay has as many members as it takes by invite.")
	}
	// The code is spent before the member is added: it never admits two,
	// also when another node (or process) spends it at the same time.
	spent, err := m.store.DeleteListEntry(ctx, ListInvites, code)
	if err != nil {
		m.log.Error("spend invite code", "err", err)
		return false, wisp.InternalError
	}
	delete(m.invites, code)
	if !spent {
		return false, wisp.Reason(wisp.PrefixRestricted, "that invite code was used already.")
	}
	if err := m.admin.AllowPubkey(ctx, pk, "joined with an invite of "+iv.minter); err != nil {
		m.log.Error("add member", "pubkey", pk, "err", err)
		return false, wisp.InternalError
	}
	m.log.Info("member joined", "pubkey", pk, "invited_by", iv.minter)
	m.announce(ctx, kindAddMember, pk)
	return true, "info: welcome to " + m.relayName() + "!"
}

func (m *Members) leave(ctx context.Context, ev *nostr.Event) (bool, string) {
	pk := ev.PubKey
	switch {
	case !hasProtectedTag(ev.Tags):
		return false, wisp.Reason(wisp.PrefixInvalid, `a leave request carries a ["-"] tag (NIP-70).`)
	case m.lists.PubkeyFixed(pk):
		return false, wisp.Reason(wisp.PrefixRestricted, "your membership is set in this relay's configuration; ask its operator.")
	case !m.lists.PubkeyListed(pk):
		return true, wisp.Reason(wisp.PrefixDuplicate, "you are not a member of this relay.")
	}
	if err := m.remove(ctx, pk); err != nil {
		m.log.Error("remove member", "pubkey", pk, "err", err)
		return false, wisp.InternalError
	}
	m.log.Info("member left", "pubkey", pk)
	return true, ""
}

// remove takes pk off the allow list and its roles, and announces it.
// The caller holds mu.
func (m *Members) remove(ctx context.Context, pk string) error {
	if err := m.admin.UnallowPubkey(ctx, pk); err != nil {
		return err
	}
	if len(m.assigned[pk]) > 0 {
		if _, err := m.store.DeleteListEntry(ctx, ListRoles, pk); err != nil {
			return err
		}
		delete(m.assigned, pk)
	}
	m.announce(ctx, kindRemoveMember, pk)
	return nil
}

// Invite mints a code for the first of viewers that may have one, and
// returns it as a relay-signed kind 28935.
func (m *Members) Invite(ctx context.Context, viewers wisp.Pubkeys) (*nostr.Event, string) {
	who := "members"
	if m.cfg.AdminsOnly {
		who = "admins"
	}
	if len(viewers) == 0 {
		return nil, wisp.Reason(wisp.PrefixAuthRequired, "invite codes are given to this relay's "+who+"; authenticate first")
	}
	minter := ""
	for _, pk := range viewers {
		if slices.Contains(m.cfg.Admins, pk) || !m.cfg.AdminsOnly && m.lists.PubkeyListed(pk) && !m.lists.PubkeyBanned(pk) {
			minter = pk
			break
		}
	}
	if minter == "" {
		return nil, wisp.Reason(wisp.PrefixRestricted, "invite codes are given only to this relay's "+who)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	code, err := MintInvite(ctx, m.store, minter, m.cfg.InviteTTL, now)
	switch {
	case errors.Is(err, ErrTooManyInvites):
		return nil, wisp.Reason(wisp.PrefixRateLimited, fmt.Sprintf("you have %d invite codes not used yet; ask again once they are used or expire", maxInvitesPerMinter))
	case err != nil:
		m.log.Error("mint invite code", "err", err)
		return nil, wisp.InternalError
	}
	m.invites[code] = invite{expires: now.Add(m.cfg.InviteTTL), minter: minter}
	return m.sign(kindInviteRequest, nostr.Tags{{"-"}, {"claim", code}}, ""), ""
}

func (m *Members) forgetInvite(ctx context.Context, code string) {
	delete(m.invites, code)
	if _, err := m.store.DeleteListEntry(ctx, ListInvites, code); err != nil {
		m.log.Warn("remove an expired invite code", "err", err)
	}
}

func (m *Members) relayName() string {
	if m.cfg.RelayURL != "" {
		return m.cfg.RelayURL
	}
	return "this relay"
}

// Limits are the front page's rows about membership.
func (m *Members) Limits() []wisp.LimitRow {
	who := "members"
	if m.cfg.AdminsOnly {
		who = "admins"
	}
	return []wisp.LimitRow{
		{Name: "Membership (NIP-43)", Value: fmt.Sprintf("by invite code; codes are valid for %s, single use, given to %s (at most %d unused each)", m.cfg.InviteTTL, who, maxInvitesPerMinter)},
		{Name: "Members joining by invite", Value: "up to " + strconv.Itoa(m.cfg.MaxMembers) + " members in all"},
	}
}

// sign makes an event signed by the relay's key.
func (m *Members) sign(kind int, tags nostr.Tags, content string) *nostr.Event {
	return signAt(m.cfg.SecretKey, kind, nostr.Timestamp(time.Now().Unix()), tags, content)
}

func signAt(sk string, kind int, at nostr.Timestamp, tags nostr.Tags, content string) *nostr.Event {
	ev := &nostr.Event{Kind: kind, CreatedAt: at, Tags: tags, Content: content}
	if err := ev.Sign(sk); err != nil {
		panic("sign with the relay's key: " + err.Error()) // the key was checked at start
	}
	return ev
}

func tagValue(tags nostr.Tags, name string) string {
	for _, tag := range tags {
		if len(tag) >= 2 && tag[0] == name {
			return tag[1]
		}
	}
	return ""
}

func hasProtectedTag(tags nostr.Tags) bool {
	return slices.ContainsFunc(tags, func(t nostr.Tag) bool { return len(t) >= 1 && t[0] == "-" })
}
