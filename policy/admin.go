package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/storage"
)

// Settings keys of the relay's description.
const (
	settingName        = "relay_name"
	settingDescription = "relay_description"
	settingIcon        = "relay_icon"
)

// Admin carries out NIP-86 management calls: it stores each change, applies
// it to the live lists at once, and removes stored events of banned pubkeys
// and events. The caller has checked that the caller is an admin.
type Admin struct {
	lists  *Lists
	store  storage.Moderation
	eraser storage.Eraser
	log    *slog.Logger

	mu       sync.RWMutex
	settings map[string]string

	// writeMu makes the Admin's own changes (stored, then applied) and
	// Refresh take turns, so that a Refresh that read the store before a
	// change never swaps in a state without it.
	writeMu sync.Mutex
}

// NewAdmin returns an Admin over lists, keeping its state in store and
// deleting events through eraser.
func NewAdmin(lists *Lists, store storage.Moderation, eraser storage.Eraser, log *slog.Logger) *Admin {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Admin{lists: lists, store: store, eraser: eraser, log: log, settings: map[string]string{}}
}

// Load reads the stored lists and settings.
func (a *Admin) Load(ctx context.Context) error {
	if err := a.lists.Load(ctx, a.store); err != nil {
		return err
	}
	s, err := a.store.Settings(ctx)
	if err != nil {
		return fmt.Errorf("load settings: %w", err)
	}
	a.mu.Lock()
	a.settings = s
	a.mu.Unlock()
	return nil
}

// Refresh reads the stored lists and settings again and swaps them in, for
// a store that other processes change too (several wisp nodes on one
// PostgreSQL database, whose Watch says storage.ChangedModeration). Rules
// reading the lists meanwhile see the old state or the new one; on an
// error the old state stays.
func (a *Admin) Refresh(ctx context.Context) error {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	return a.Load(ctx)
}

// Info returns base with what admins changed.
func (a *Admin) Info(base wisp.RelayInfo) wisp.RelayInfo {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if v, ok := a.settings[settingName]; ok {
		base.Name = v
	}
	if v, ok := a.settings[settingDescription]; ok {
		base.Description = v
	}
	if v, ok := a.settings[settingIcon]; ok {
		base.Icon = v
	}
	return base
}

type method struct {
	name string
	call func(a *Admin, ctx context.Context, p params) (any, error)
}

// methods are the supported NIP-86 methods, in the order supportedmethods
// lists them.
var methods = []method{
	{"supportedmethods", nil}, // answered by Call: it lists this table
	{"banpubkey", (*Admin).banPubkey},
	{"unbanpubkey", listRemover(ListBannedPubkeys, params.pubkey)},
	{"listbannedpubkeys", lister(ListBannedPubkeys, "pubkey")},
	{"allowpubkey", listPutter(ListAllowedPubkeys, params.pubkey, ListBannedPubkeys)},
	{"unallowpubkey", listRemover(ListAllowedPubkeys, params.pubkey)},
	{"listallowedpubkeys", lister(ListAllowedPubkeys, "pubkey")},
	{"banevent", (*Admin).banEvent},
	{"unbanevent", listRemover(ListBannedEvents, params.eventID)},
	{"allowevent", listPutter(ListAllowedEvents, params.eventID, ListBannedEvents)},
	{"unallowevent", listRemover(ListAllowedEvents, params.eventID)},
	{"listbannedevents", lister(ListBannedEvents, "id")},
	{"listallowedevents", lister(ListAllowedEvents, "id")},
	{"allowkind", listPutter(ListAllowedKinds, params.kind, ListDisallowedKinds)},
	{"disallowkind", listPutter(ListDisallowedKinds, params.kind, ListAllowedKinds)},
	{"listallowedkinds", kindLister(ListAllowedKinds)},
	{"listdisallowedkinds", kindLister(ListDisallowedKinds)},
	{"blockip", listPutter(ListBlockedIPs, params.ip)},
	{"unblockip", listRemover(ListBlockedIPs, params.ip)},
	{"listblockedips", lister(ListBlockedIPs, "ip")},
	{"changerelayname", setter(settingName)},
	{"changerelaydescription", setter(settingDescription)},
	{"changerelayicon", setter(settingIcon)},
}

// Methods lists the supported methods.
func (a *Admin) Methods() []string {
	out := make([]string, len(methods))
	for i, m := range methods {
		out[i] = m.name
	}
	return out
}

// Call runs one method. caller is the admin's pubkey, for the log.
func (a *Admin) Call(ctx context.Context, caller, name string, raw []json.RawMessage) (any, error) {
	i := slices.IndexFunc(methods, func(m method) bool { return m.name == name })
	if i < 0 {
		return nil, fmt.Errorf("%w %q", wisp.ErrUnknownMethod, name)
	}
	if methods[i].call == nil {
		return a.Methods(), nil
	}
	res, err := methods[i].call(a, ctx, params{name: name, raw: raw})
	if err == nil {
		a.log.Info("management call", "method", name, "admin", caller, "params", rawStrings(raw))
	}
	return res, err
}

func rawStrings(raw []json.RawMessage) []string {
	out := make([]string, len(raw))
	for i, r := range raw {
		out[i] = string(r)
	}
	return out
}

// params are a call's parameters: a key (pubkey, id, kind or IP) and an
// optional reason.
type params struct {
	name string
	raw  []json.RawMessage
}

func (p params) str(i int) (string, bool) {
	if i >= len(p.raw) {
		return "", false
	}
	var s string
	if err := json.Unmarshal(p.raw[i], &s); err != nil {
		return "", false
	}
	return s, true
}

func (p params) reason() string {
	s, _ := p.str(1)
	return s
}

func (p params) bad(what string) error {
	return fmt.Errorf("%w for %s: want %s", wisp.ErrBadParams, p.name, what)
}

func (p params) pubkey() (string, error) {
	s, ok := p.str(0)
	if !ok || !nostr.IsValid32ByteHex(s) {
		return "", p.bad("a 64-hex pubkey")
	}
	return s, nil
}

func (p params) eventID() (string, error) {
	s, ok := p.str(0)
	if !ok || !nostr.IsValid32ByteHex(s) {
		return "", p.bad("a 64-hex event id")
	}
	return s, nil
}

func (p params) kind() (string, error) {
	if len(p.raw) == 0 {
		return "", p.bad("a kind number")
	}
	var f float64
	if err := json.Unmarshal(p.raw[0], &f); err != nil || f != math.Trunc(f) || f < 0 || f > 65535 {
		return "", p.bad("a kind number")
	}
	return strconv.Itoa(int(f)), nil
}

func (p params) ip() (string, error) {
	s, ok := p.str(0)
	ip := net.ParseIP(s)
	if !ok || ip == nil {
		return "", p.bad("an IP address")
	}
	return ip.String(), nil
}

func listPutter(list string, key func(params) (string, error), removeFrom ...string) func(*Admin, context.Context, params) (any, error) {
	return func(a *Admin, ctx context.Context, p params) (any, error) {
		k, err := key(p)
		if err != nil {
			return nil, err
		}
		a.writeMu.Lock()
		defer a.writeMu.Unlock()
		if err := a.store.PutListEntry(ctx, list, k, p.reason(), removeFrom...); err != nil {
			return nil, err
		}
		a.lists.put(list, k, p.reason(), removeFrom...)
		return true, nil
	}
}

func listRemover(list string, key func(params) (string, error)) func(*Admin, context.Context, params) (any, error) {
	return func(a *Admin, ctx context.Context, p params) (any, error) {
		k, err := key(p)
		if err != nil {
			return nil, err
		}
		a.writeMu.Lock()
		defer a.writeMu.Unlock()
		if _, err := a.store.DeleteListEntry(ctx, list, k); err != nil {
			return nil, err
		}
		a.lists.remove(list, k)
		return true, nil
	}
}

func lister(list, field string) func(*Admin, context.Context, params) (any, error) {
	return func(a *Admin, _ context.Context, _ params) (any, error) {
		entries := a.lists.entries(list)
		out := make([]map[string]string, len(entries))
		for i, e := range entries {
			out[i] = map[string]string{field: e.Key, "reason": e.Reason}
		}
		return out, nil
	}
}

func kindLister(list string) func(*Admin, context.Context, params) (any, error) {
	return func(a *Admin, _ context.Context, _ params) (any, error) {
		out := []int{}
		for _, e := range a.lists.entries(list) {
			if k, err := strconv.Atoi(e.Key); err == nil {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out, nil
	}
}

func setter(key string) func(*Admin, context.Context, params) (any, error) {
	return func(a *Admin, ctx context.Context, p params) (any, error) {
		v, ok := p.str(0)
		if !ok {
			return nil, p.bad("a string")
		}
		a.writeMu.Lock()
		defer a.writeMu.Unlock()
		if err := a.store.SetSetting(ctx, key, v); err != nil {
			return nil, err
		}
		a.mu.Lock()
		a.settings[key] = v
		a.mu.Unlock()
		return true, nil
	}
}

// AllowPubkey adds pk to the allow list (off the banned pubkeys), as the
// NIP-86 method allowpubkey does: stored, then applied.
func (a *Admin) AllowPubkey(ctx context.Context, pk, reason string) error {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	if err := a.store.PutListEntry(ctx, ListAllowedPubkeys, pk, reason, ListBannedPubkeys); err != nil {
		return err
	}
	a.lists.put(ListAllowedPubkeys, pk, reason, ListBannedPubkeys)
	return nil
}

// UnallowPubkey takes pk off the added allow list, as unallowpubkey does.
func (a *Admin) UnallowPubkey(ctx context.Context, pk string) error {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	if _, err := a.store.DeleteListEntry(ctx, ListAllowedPubkeys, pk); err != nil {
		return err
	}
	a.lists.remove(ListAllowedPubkeys, pk)
	return nil
}

// banPubkey bans a pubkey (taking it off the allow list) and removes its
// stored events.
func (a *Admin) banPubkey(ctx context.Context, p params) (any, error) {
	if _, err := listPutter(ListBannedPubkeys, params.pubkey, ListAllowedPubkeys)(a, ctx, p); err != nil {
		return nil, err
	}
	pk, _ := p.pubkey()
	n, err := a.eraser.DeleteMatching(ctx, []nostr.Filter{{Authors: []string{pk}}})
	if err != nil {
		return nil, fmt.Errorf("remove events of banned pubkey: %w", err)
	}
	a.log.Info("removed events of banned pubkey", "pubkey", pk, "events", n)
	return true, nil
}

// banEvent bans an event id (taking it off the allowed events) and removes
// the stored event.
func (a *Admin) banEvent(ctx context.Context, p params) (any, error) {
	if _, err := listPutter(ListBannedEvents, params.eventID, ListAllowedEvents)(a, ctx, p); err != nil {
		return nil, err
	}
	id, _ := p.eventID()
	if _, err := a.eraser.DeleteMatching(ctx, []nostr.Filter{{IDs: []string{id}}}); err != nil {
		return nil, fmt.Errorf("remove banned event: %w", err)
	}
	return true, nil
}
