package policy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp/storage"
)

// The moderation lists. Names are stored in the database; never rename one.
const (
	ListBannedPubkeys   = "banned_pubkeys"
	ListAllowedPubkeys  = "allowed_pubkeys"
	ListBannedEvents    = "banned_events"
	ListAllowedEvents   = "allowed_events"
	ListAllowedKinds    = "allowed_kinds"
	ListDisallowedKinds = "disallowed_kinds"
	ListBlockedIPs      = "blocked_ips"
)

var allLists = []string{
	ListBannedPubkeys, ListAllowedPubkeys, ListBannedEvents, ListAllowedEvents,
	ListAllowedKinds, ListDisallowedKinds, ListBlockedIPs,
}

// Lists is the live moderation state every rule reads: the fixed lists from
// configuration plus the ones NIP-86 calls change (kept in the database).
// Safe for concurrent use; changes apply to the next event.
type Lists struct {
	// From configuration: replaced whole by SetFixed (a reload), never
	// changed in place, so rules read it without a lock.
	fixed atomic.Pointer[fixedLists]

	mu  sync.RWMutex
	dyn map[string]map[string]string // list -> key -> reason

	// listedOnly: only listed pubkeys may write, even while the lists are
	// empty (NIP-43 membership: the allow list is the member list).
	listedOnly atomic.Bool
}

// fixedLists are the lists of the configuration (WISP_ALLOW_PUBKEYS, ...).
type fixedLists struct {
	allowPub, denyPub     map[string]bool
	allowKinds, denyKinds kindSet
}

// NewLists returns lists with the fixed entries of the configuration.
func NewLists(allowPubkeys, denyPubkeys []string, allowKinds, denyKinds KindSet) *Lists {
	l := &Lists{dyn: map[string]map[string]string{}}
	for _, name := range allLists {
		l.dyn[name] = map[string]string{}
	}
	l.SetFixed(allowPubkeys, denyPubkeys, allowKinds, denyKinds)
	return l
}

// SetFixed replaces the lists of the configuration, as a reload does;
// what admins changed over NIP-86 (the stored lists) stays as it is.
func (l *Lists) SetFixed(allowPubkeys, denyPubkeys []string, allowKinds, denyKinds KindSet) {
	l.fixed.Store(&fixedLists{
		allowPub:   set(allowPubkeys),
		denyPub:    set(denyPubkeys),
		allowKinds: kindSet(allowKinds),
		denyKinds:  kindSet(denyKinds),
	})
}

func set(keys []string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// Load reads the stored lists, replacing what was loaded before.
func (l *Lists) Load(ctx context.Context, st storage.Moderation) error {
	loaded := map[string]map[string]string{}
	for _, name := range allLists {
		entries, err := st.ListEntries(ctx, name)
		if err != nil {
			return fmt.Errorf("load %s: %w", name, err)
		}
		m := make(map[string]string, len(entries))
		for _, e := range entries {
			m[e.Key] = e.Reason
		}
		loaded[name] = m
	}
	l.mu.Lock()
	l.dyn = loaded
	l.mu.Unlock()
	return nil
}

// put and remove change the in-memory copy; Admin persists first.
func (l *Lists) put(list, key, reason string, removeFrom ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dyn[list][key] = reason
	for _, other := range removeFrom {
		delete(l.dyn[other], key)
	}
}

func (l *Lists) remove(list, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.dyn[list], key)
}

func (l *Lists) has(list, key string) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.dyn[list][key]
	return ok
}

// entries returns a list, sorted by key.
func (l *Lists) entries(list string) []storage.ListEntry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]storage.ListEntry, 0, len(l.dyn[list]))
	for k, r := range l.dyn[list] {
		out = append(out, storage.ListEntry{Key: k, Reason: r})
	}
	slices.SortFunc(out, func(a, b storage.ListEntry) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// PubkeyBanned reports whether pk is on the deny list (fixed or banned).
func (l *Lists) PubkeyBanned(pk string) bool {
	return l.fixed.Load().denyPub[pk] || l.has(ListBannedPubkeys, pk)
}

// RequireListed makes the allow list hold even while it is empty: only
// listed pubkeys may write (and, with WISP_AUTH=all, read). NIP-43
// membership turns it on, its members being the allow list.
func (l *Lists) RequireListed() { l.listedOnly.Store(true) }

// allowListActive reports whether only listed pubkeys may write.
func (l *Lists) allowListActive() bool {
	if len(l.fixed.Load().allowPub) > 0 || l.listedOnly.Load() {
		return true
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.dyn[ListAllowedPubkeys]) > 0
}

// PubkeyAllowed reports whether pk passes the allow list: it is on it, or
// the list is empty.
func (l *Lists) PubkeyAllowed(pk string) bool {
	if !l.allowListActive() {
		return true
	}
	return pk != "" && (l.fixed.Load().allowPub[pk] || l.has(ListAllowedPubkeys, pk))
}

// PubkeyListed reports whether pk is on the allow list, fixed or added.
func (l *Lists) PubkeyListed(pk string) bool {
	return l.fixed.Load().allowPub[pk] || l.has(ListAllowedPubkeys, pk)
}

// PubkeyFixed reports whether pk is on the allow list of the
// configuration (WISP_ALLOW_PUBKEYS), which no call removes.
func (l *Lists) PubkeyFixed(pk string) bool { return l.fixed.Load().allowPub[pk] }

// AllowedPubkeys returns the allow list, fixed and added, sorted.
func (l *Lists) AllowedPubkeys() []string {
	fixed := l.fixed.Load()
	l.mu.RLock()
	out := make([]string, 0, len(fixed.allowPub)+len(l.dyn[ListAllowedPubkeys]))
	for pk := range l.dyn[ListAllowedPubkeys] {
		out = append(out, pk)
	}
	l.mu.RUnlock()
	for pk := range fixed.allowPub {
		if !slices.Contains(out, pk) {
			out = append(out, pk)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// KindAllowed reports whether events of kind may be stored: not denied,
// and on the allow list when there is one.
func (l *Lists) KindAllowed(kind int) bool {
	k := strconv.Itoa(kind)
	fixed := l.fixed.Load()
	if fixed.denyKinds.has(kind) || l.has(ListDisallowedKinds, k) {
		return false
	}
	l.mu.RLock()
	dynAllow := len(l.dyn[ListAllowedKinds]) > 0
	_, dynHas := l.dyn[ListAllowedKinds][k]
	l.mu.RUnlock()
	if len(fixed.allowKinds) == 0 && !dynAllow {
		return true
	}
	return fixed.allowKinds.has(kind) || dynHas
}

// restrictsKinds reports whether some kinds are refused.
func (l *Lists) restrictsKinds() bool {
	fixed := l.fixed.Load()
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(fixed.allowKinds) > 0 || len(fixed.denyKinds) > 0 ||
		len(l.dyn[ListAllowedKinds]) > 0 || len(l.dyn[ListDisallowedKinds]) > 0
}

// EventBanned reports whether an event id was banned.
func (l *Lists) EventBanned(id string) bool { return l.has(ListBannedEvents, id) }

// EventAllowed reports whether an event id was allowed by an admin, which
// exempts it from the pubkey and kind lists.
func (l *Lists) EventAllowed(id string) bool { return l.has(ListAllowedEvents, id) }

// IPBlocked reports whether an address is blocked.
func (l *Lists) IPBlocked(addr string) bool {
	if addr == "" {
		return false
	}
	return l.has(ListBlockedIPs, normalizeIP(addr))
}

func normalizeIP(addr string) string {
	if ip := net.ParseIP(addr); ip != nil {
		return ip.String()
	}
	return addr
}

// KindSet is a set of kinds given as single kinds and inclusive ranges.
type KindSet []KindRange

// KindRange is an inclusive range of kinds.
type KindRange struct{ From, To int }

type kindSet = KindSet

func (s KindSet) has(kind int) bool {
	for _, r := range s {
		if kind >= r.From && kind <= r.To {
			return true
		}
	}
	return false
}

// String writes the set back as ParseKinds reads it.
func (s KindSet) String() string {
	parts := make([]string, len(s))
	for i, r := range s {
		if r.From == r.To {
			parts[i] = strconv.Itoa(r.From)
		} else {
			parts[i] = strconv.Itoa(r.From) + "-" + strconv.Itoa(r.To)
		}
	}
	return strings.Join(parts, ",")
}

// ParseKinds reads a comma-separated list of kinds and ranges, such as
// "0,1,3,7,30000-39999". Spaces are ignored; "" is the empty set.
func ParseKinds(s string) (KindSet, error) {
	var out KindSet
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		from, err := parseKind(lo)
		if err != nil {
			return nil, err
		}
		to := from
		if isRange {
			if to, err = parseKind(hi); err != nil {
				return nil, err
			}
			if to < from {
				return nil, fmt.Errorf("range %q runs backwards", part)
			}
		}
		out = append(out, KindRange{from, to})
	}
	return out, nil
}

func parseKind(s string) (int, error) {
	k, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || k < 0 || k > 65535 {
		return 0, fmt.Errorf("%q is not a kind (0 to 65535)", s)
	}
	return k, nil
}

// ParsePubkeys reads a comma-separated list of pubkeys, each 64 hex
// characters or an npub. Spaces are ignored; "" is the empty list.
func ParsePubkeys(s string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		pk, err := ParsePubkey(part)
		if err != nil {
			return nil, err
		}
		out = append(out, pk)
	}
	return out, nil
}

// ErrBadPubkey: not 64 hex characters or an npub.
var ErrBadPubkey = errors.New("want 64 hex characters or an npub")

// ParsePubkey reads one pubkey, 64 hex characters (any case) or an npub,
// and returns it as lowercase hex.
func ParsePubkey(s string) (string, error) {
	if strings.HasPrefix(strings.ToLower(s), "npub1") {
		pk, ok := decodeNpub(s)
		if !ok {
			return "", fmt.Errorf("%q: %w", s, ErrBadPubkey)
		}
		return pk, nil
	}
	pk := strings.ToLower(s)
	if !nostr.IsValid32ByteHex(pk) {
		return "", fmt.Errorf("%q: %w", s, ErrBadPubkey)
	}
	return pk, nil
}
