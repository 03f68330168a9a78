// Package groups is NIP-29, relay-based groups: groups live on the relay,
// their events carry an h tag, admins moderate them with kinds 9000-9020,
// users ask to join and leave (9021, 9022), and the relay publishes each
// group's state (kinds 39000-39005) signed by its own key.
//
// The relay consults a *Groups at each step of an event's way (it meets
// relay.Groups; see relay/keeper.go): Judge refuses early what the
// committed state refuses, the writer stages each batch against the state
// as its own earlier events left it and saves the relay-signed answers and
// state snapshots in the same transaction, and Commit applies the change
// once it is durable. Reads (REQ, COUNT, NIP-77, search) of private
// groups' events and hidden groups' state are for members only.
//
// The state survives restarts: Load rebuilds it from the relay-signed
// snapshots, which are written with every change, plus the stored
// delete-group (9008) and create-invite (9009) events.
package groups

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/storage"
)

// Config is how the relay runs groups.
type Config struct {
	// SecretKey signs the relay's events (64 hex); PublicKey is its pubkey,
	// NIP-11's self.
	SecretKey, PublicKey string
	// Creators may create groups (kind 9007); empty: anyone who may
	// publish on the relay.
	Creators []string
	// MaxGroups bounds the groups the relay holds; MaxMembers the members
	// of one group.
	MaxGroups, MaxMembers int
	// MaxAge bounds how old a client's event for a group may be (NIP-29:
	// no late publication); 0: no bound. Imports are not bound.
	MaxAge time.Duration
	Logger *slog.Logger // nil: discard
}

// Store is what groups need of the event store: Query and Count to read,
// Scan and DeleteMatching to rebuild and to delete. A store that is also a
// storage.PrefixLookup lets timeline references be checked.
type Store interface {
	storage.Store
	storage.Eraser
}

// Groups keeps the groups of one relay. Create it with New, call Load and
// Start before the relay serves, and Close after it stopped.
type Groups struct {
	cfg      Config
	store    Store
	prefix   storage.PrefixLookup // nil: previous tags are not checked
	creators map[string]bool
	log      *slog.Logger

	mu     sync.RWMutex
	groups map[string]*group // committed; a group is replaced, never changed

	ctx      context.Context // the janitors'; set by Start
	cancel   context.CancelFunc
	janitors sync.WaitGroup
	cleaning map[string]bool // groups whose janitor runs; under mu
}

// New returns the groups of a relay over store. It starts nothing.
func New(cfg Config, store Store) (*Groups, error) {
	if !nostr.IsValid32ByteHex(cfg.PublicKey) || cfg.SecretKey == "" {
		return nil, errors.New("groups need the relay's key")
	}
	if cfg.MaxGroups <= 0 || cfg.MaxMembers <= 0 {
		return nil, errors.New("groups need MaxGroups and MaxMembers")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Groups{cfg: cfg, store: store, log: log, groups: map[string]*group{}, cleaning: map[string]bool{}}
	s.prefix, _ = store.(storage.PrefixLookup)
	if len(cfg.Creators) > 0 {
		s.creators = map[string]bool{}
		for _, pk := range cfg.Creators {
			s.creators[pk] = true
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start resumes the deletions of groups deleted before a restart.
func (s *Groups) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, g := range s.groups {
		if g.deleting {
			s.startJanitor(id)
		}
	}
}

// Close stops the deletions under way; they resume at the next Start.
func (s *Groups) Close() error {
	s.cancel()
	s.janitors.Wait()
	return nil
}

// group returns the committed state of a group, or nil.
func (s *Groups) group(id string) *group {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.groups[id]
}

// committed is the committed state as a view; the caller holds s.mu.
type committed struct{ s *Groups }

func (c committed) group(id string) *group { return c.s.groups[id] }
func (c committed) count() int             { return len(c.s.groups) }

// Judge refuses, before the signature is checked, what the committed state
// and the event itself say no to: state events signed by others, events
// for groups that do not exist or refuse them, moderation without the
// role, late publication and unknown timeline references.
func (s *Groups) Judge(ctx context.Context, in *wisp.Input) wisp.Decision {
	ev := in.Event
	if isStateKind(ev.Kind) {
		return rejected(wisp.PrefixBlocked, "events of kinds %d-%d are group state, published by this relay itself (NIP-29)", firstStateKind, lastStateKind)
	}
	gid, d := groupOf(ev)
	switch {
	case d.Action != wisp.Accept:
		return d
	case gid == "" && isManagement(ev.Kind):
		return rejected(wisp.PrefixInvalid, "kind %d needs an h tag naming its group (NIP-29)", ev.Kind)
	case gid == "":
		return wisp.Accepted
	}
	if in.Source == wisp.SourceClient && s.cfg.MaxAge > 0 {
		received := in.Received
		if received.IsZero() {
			received = time.Now()
		}
		if ev.CreatedAt.Time().Before(received.Add(-s.cfg.MaxAge)) {
			return rejected(wisp.PrefixInvalid, "created_at is more than %s ago: groups take events as they happen (NIP-29 late publication)", s.cfg.MaxAge)
		}
	}
	s.mu.RLock()
	d, _ = s.check(committed{s}, ev, gid)
	s.mu.RUnlock()
	if d.Action != wisp.Accept {
		return d
	}
	if in.Source == wisp.SourceClient {
		return s.checkPrevious(ctx, ev)
	}
	return wisp.Accepted
}

// checkPrevious checks NIP-29 timeline references: every value of every
// previous tag is the first 8 hex digits of an event this relay holds.
func (s *Groups) checkPrevious(ctx context.Context, ev *nostr.Event) wisp.Decision {
	n := 0
	for _, tag := range ev.Tags {
		if len(tag) < 2 || tag[0] != "previous" {
			continue
		}
		for _, ref := range tag[1:] {
			if n++; n > maxPrevious {
				return rejected(wisp.PrefixInvalid, "at most %d timeline references (previous tags)", maxPrevious)
			}
			if len(ref) != 8 || !isLowerHex(ref) {
				return rejected(wisp.PrefixInvalid, "a timeline reference (previous tag) is the first 8 hex digits of an event id, not %q", ref)
			}
			if s.prefix == nil {
				continue
			}
			found, err := s.prefix.HasIDPrefix(ctx, ref)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("look up timeline reference", "ref", ref, "err", err)
				}
				return wisp.Rejected(wisp.PrefixError, "internal error")
			}
			if !found {
				return rejected(wisp.PrefixInvalid, "timeline reference %s (previous tag) names no event of this relay", ref)
			}
		}
	}
	return wisp.Accepted
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// NIP11 is NIP-11's "nip29" object: wisp supports subgroups.
func (s *Groups) NIP11() any { return map[string]bool{"subgroups": true} }

// Limits are the groups' limits for the front page.
func (s *Groups) Limits() []wisp.LimitRow {
	creators := "anyone who may publish"
	if len(s.creators) > 0 {
		creators = strconv.Itoa(len(s.creators)) + " pubkeys chosen by the operator"
	}
	age := "no limit"
	if s.cfg.MaxAge > 0 {
		age = "at most " + s.cfg.MaxAge.String() + " old"
	}
	return []wisp.LimitRow{
		{Name: "Groups (NIP-29)", Value: fmt.Sprintf("at most %d, each with at most %d members", s.cfg.MaxGroups, s.cfg.MaxMembers)},
		{Name: "Who may create groups", Value: creators},
		{Name: "Group events", Value: age},
	}
}
