package policy

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/wisp-relay/wisp"
)

// Config is the operator's policy, from WISP_ variables.
type Config struct {
	Auth wisp.AuthMode
	// MinPoW is the NIP-13 difficulty every client event needs (bits, 0: none).
	MinPoW int
	// Token buckets (zero: no limit).
	EventRateIP     Rate // EVENTs per client IP
	EventRatePubkey Rate // EVENTs per author (checked after the signature)
	ReqRateIP       Rate // REQs (and COUNTs) per client IP
	ConnRateIP      Rate // new websocket connections per client IP
	// MaxConnsPerIP caps open connections per client IP (0: no cap).
	MaxConnsPerIP int
	// Plugin is a strfry write-policy plugin command ("" for none), and
	// PluginTimeout how long one answer may take (0: 5s).
	Plugin        string
	PluginTimeout time.Duration
	Logger        *slog.Logger // nil: discard
}

// Policy is the relay's whole policy: the gate for new connections, the
// read rules, and the write chain in two stages. Early rules need nothing
// verified (lists, PoW, IP limits) and run before the signature check, so
// that junk costs no schnorr verification; late rules trust the pubkey
// (per-author rate limits) or may block (the plugin) and run after it.
type Policy struct {
	cfg    Config
	lists  *Lists
	log    *slog.Logger
	early  Chain
	late   Chain
	plugin *Plugin

	reqLimit  *limiter
	connLimit *limiter
	conns     *counter
}

// New builds the policy over lists (which NIP-86 calls may change). It
// starts nothing: a plugin starts with the first event it must judge.
func New(cfg Config, lists *Lists) (*Policy, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if lists == nil {
		lists = NewLists(nil, nil, nil, nil)
	}
	p := &Policy{
		cfg:       cfg,
		lists:     lists,
		log:       log,
		reqLimit:  newLimiter(cfg.ReqRateIP),
		connLimit: newLimiter(cfg.ConnRateIP),
		conns:     newCounter(cfg.MaxConnsPerIP),
	}
	p.early.log, p.late.log = log, log

	// Cheapest first. Requests to vanish skip all but the guards.
	p.early.addGuard("blocked-ip", IPBlock(lists))
	p.early.addGuard("event-rate-ip", RateLimit(cfg.EventRateIP, "IP address", ClientIP))
	p.early.Add("banned-event", BannedEvents(lists))
	p.early.Add("denied-pubkey", PubkeyDeny(lists))
	if cfg.Auth >= wisp.AuthWrite {
		p.early.Add("auth", AuthForWrites())
	}
	p.early.Add("allowed-pubkey", PubkeyAllow(lists))
	p.early.Add("kinds", KindFilter(lists))
	p.early.Add("pow", MinPoW(cfg.MinPoW))

	p.late.addGuard("event-rate-pubkey", RateLimit(cfg.EventRatePubkey, "pubkey", EventPubkey))
	if cfg.Plugin != "" {
		pl, err := NewPlugin(cfg.Plugin, cfg.PluginTimeout, log)
		if err != nil {
			return nil, err
		}
		p.plugin = pl
		p.late.Add("plugin", pl)
	}
	return p, nil
}

// Lists returns the live moderation lists.
func (p *Policy) Lists() *Lists { return p.lists }

// AuthMode is the configured NIP-42 mode.
func (p *Policy) AuthMode() wisp.AuthMode { return p.cfg.Auth }

// Limitation summarizes the policy for NIP-11.
func (p *Policy) Limitation() wisp.Limitation {
	return wisp.Limitation{
		AuthRequired: p.cfg.Auth == wisp.AuthAll,
		RestrictedWrites: p.cfg.Auth >= wisp.AuthWrite || p.cfg.MinPoW > 0 || p.plugin != nil ||
			p.lists.allowListActive() || p.lists.restrictsKinds(),
		MinPoW: p.cfg.MinPoW,
	}
}

// Connect decides whether a new websocket from remote may open. When it
// may, release must be called once the connection ends.
func (p *Policy) Connect(remote string, now time.Time) (d wisp.Decision, release func()) {
	if p.lists.IPBlocked(remote) {
		return wisp.Rejected(wisp.PrefixBlocked, "your IP address is blocked"), nil
	}
	key := addrKey(remote)
	if !p.connLimit.allow(key, now) {
		return wisp.Rejected(wisp.PrefixRateLimited, fmt.Sprintf("too many new connections: at most %d per %s", p.cfg.ConnRateIP.N, p.cfg.ConnRateIP.Per)), nil
	}
	release, ok := p.conns.acquire(key)
	if !ok {
		return wisp.Rejected(wisp.PrefixRateLimited, fmt.Sprintf("too many open connections from your IP address (at most %d)", p.cfg.MaxConnsPerIP)), nil
	}
	return wisp.Accepted, release
}

// Read decides whether a REQ (or COUNT) may be served.
func (p *Policy) Read(in *wisp.ReadInput) wisp.Decision {
	if p.lists.IPBlocked(in.Remote) {
		return wisp.Rejected(wisp.PrefixBlocked, "your IP address is blocked")
	}
	now := in.Time
	if now.IsZero() {
		now = time.Now()
	}
	if !p.reqLimit.allow(addrKey(in.Remote), now) {
		return wisp.Rejected(wisp.PrefixRateLimited, fmt.Sprintf("slow down: at most %d subscriptions per %s", p.cfg.ReqRateIP.N, p.cfg.ReqRateIP.Per))
	}
	if p.cfg.Auth == wisp.AuthAll {
		// Any pubkey the connection authenticated as that is a member and
		// not banned lets it read (NIP-42: every one of them counts).
		member := func(pk string) bool { return !p.lists.PubkeyBanned(pk) && p.lists.PubkeyAllowed(pk) }
		switch {
		case len(in.Authed) == 0:
			return wisp.Rejected(wisp.PrefixAuthRequired, "this relay serves only authenticated members (NIP-42)")
		case in.Authed.Any(member):
		case in.Authed.Any(p.lists.PubkeyBanned):
			return wisp.Rejected(wisp.PrefixRestricted, "this pubkey is banned from this relay")
		default:
			return wisp.Rejected(wisp.PrefixRestricted, "this pubkey is not a member of this relay")
		}
	}
	return wisp.Accepted
}

// Early runs the rules that need no verified signature.
func (p *Policy) Early(ctx context.Context, in *wisp.Input) wisp.Decision {
	return p.early.Check(ctx, in)
}

// Late runs the rules that trust the signature or may block.
func (p *Policy) Late(ctx context.Context, in *wisp.Input) wisp.Decision {
	return p.late.Check(ctx, in)
}

// Check runs both stages, for events whose signature the caller checked
// already (imports, mirrors).
func (p *Policy) Check(ctx context.Context, in *wisp.Input) wisp.Decision {
	if d := p.Early(ctx, in); d.Action != wisp.Accept {
		return d
	}
	return p.Late(ctx, in)
}

// Close stops the plugin, if one runs.
func (p *Policy) Close() error {
	if p.plugin != nil {
		return p.plugin.Close()
	}
	return nil
}
