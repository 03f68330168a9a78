package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
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
//
// Reload replaces the rules while the relay runs: each call loads one
// immutable set of them through an atomic pointer, so the hot path takes
// no lock for it and an event is judged by one configuration, old or new.
type Policy struct {
	lists *Lists
	log   *slog.Logger
	conns *counter // open connections per IP: they outlive a reload

	cur atomic.Pointer[rules]

	reloadMu sync.Mutex // one Reload (and Close) at a time
	closed   bool
	retiring []retiring     // plugins a reload replaced, to be closed
	retired  sync.WaitGroup // their closing
}

// retiring is a plugin a reload replaced, closed when timer fires.
type retiring struct {
	plugin *Plugin
	timer  *time.Timer
}

// rules are one configuration's rules, never changed once built.
type rules struct {
	cfg         Config
	early, late Chain
	plugin      *Plugin

	eventIP, eventPubkey, req, conn *limiter
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
	p := &Policy{lists: lists, log: log, conns: newCounter(cfg.MaxConnsPerIP)}
	r, err := p.build(cfg, nil)
	if err != nil {
		return nil, err
	}
	p.cur.Store(r)
	return p, nil
}

// build makes the rules of cfg. Rate limits and the plugin that did not
// change are taken over from old (nil at first), so a reload neither
// refills every bucket nor restarts the plugin.
func (p *Policy) build(cfg Config, old *rules) (*rules, error) {
	cfg.Logger = p.log
	r := &rules{cfg: cfg}
	keep := func(l *limiter, rate Rate) *limiter {
		if l != nil && l.rate == rate {
			return l
		}
		return newLimiter(rate)
	}
	if old == nil {
		old = &rules{}
	}
	r.eventIP = keep(old.eventIP, cfg.EventRateIP)
	r.eventPubkey = keep(old.eventPubkey, cfg.EventRatePubkey)
	r.req = keep(old.req, cfg.ReqRateIP)
	r.conn = keep(old.conn, cfg.ConnRateIP)
	r.early.log, r.late.log = p.log, p.log
	lists := p.lists

	// Cheapest first. Requests to vanish skip all but the guards.
	r.early.addGuard("blocked-ip", IPBlock(lists))
	r.early.addGuard("event-rate-ip", rateLimit(r.eventIP, "IP address", ClientIP))
	r.early.Add("banned-event", BannedEvents(lists))
	r.early.Add("denied-pubkey", PubkeyDeny(lists))
	if cfg.Auth >= wisp.AuthWrite {
		r.early.Add("auth", AuthForWrites())
	}
	r.early.Add("allowed-pubkey", PubkeyAllow(lists))
	r.early.Add("kinds", KindFilter(lists))
	r.early.Add("pow", MinPoW(cfg.MinPoW))

	r.late.addGuard("event-rate-pubkey", rateLimit(r.eventPubkey, "pubkey", EventPubkey))
	if cfg.Plugin != "" {
		if pl := old.plugin; pl != nil && old.cfg.Plugin == cfg.Plugin && pluginTimeout(old.cfg) == pluginTimeout(cfg) {
			r.plugin = pl
		} else {
			pl, err := NewPlugin(cfg.Plugin, cfg.PluginTimeout, p.log)
			if err != nil {
				return nil, err
			}
			r.plugin = pl
		}
		r.late.Add("plugin", r.plugin)
	}
	return r, nil
}

func pluginTimeout(c Config) time.Duration {
	if c.PluginTimeout <= 0 {
		return 5 * time.Second
	}
	return c.PluginTimeout
}

// Reload replaces the policy's configuration while the relay runs: the
// auth mode, proof of work, rate limits (a bucket whose rate did not
// change keeps its tokens), the cap on connections per IP (open ones are
// still counted) and the plugin (restarted only when its command or
// timeout changed; the one replaced finishes the events it was asked
// about first). The lists are not touched: Lists.SetFixed replaces the
// configured ones, and what admins changed over NIP-86 stays. On error
// (a plugin that cannot be found) nothing changes.
func (p *Policy) Reload(cfg Config) error {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	if p.closed {
		return errors.New("policy closed")
	}
	old := p.cur.Load()
	r, err := p.build(cfg, old)
	if err != nil {
		return err
	}
	p.conns.setMax(cfg.MaxConnsPerIP)
	p.cur.Store(r)
	if old.plugin != nil && old.plugin != r.plugin {
		// A verify worker may have loaded the old rules just before: the
		// old plugin is closed once such a late event had time to be asked.
		pl, grace := old.plugin, pluginTimeout(old.cfg)+time.Second
		p.retired.Add(1)
		p.retiring = append(p.retiring, retiring{pl, time.AfterFunc(grace, func() {
			defer p.retired.Done()
			pl.Close()
			p.reloadMu.Lock()
			p.retiring = slices.DeleteFunc(p.retiring, func(r retiring) bool { return r.plugin == pl })
			p.reloadMu.Unlock()
		})})
	}
	return nil
}

// Config returns the configuration in force (Logger left out).
func (p *Policy) Config() Config {
	c := p.cur.Load().cfg
	c.Logger = nil
	return c
}

// Lists returns the live moderation lists.
func (p *Policy) Lists() *Lists { return p.lists }

// AuthMode is the configured NIP-42 mode.
func (p *Policy) AuthMode() wisp.AuthMode { return p.cur.Load().cfg.Auth }

// Limitation summarizes the policy for NIP-11.
func (p *Policy) Limitation() wisp.Limitation {
	r := p.cur.Load()
	return wisp.Limitation{
		AuthRequired: r.cfg.Auth == wisp.AuthAll,
		RestrictedWrites: r.cfg.Auth >= wisp.AuthWrite || r.cfg.MinPoW > 0 || r.plugin != nil ||
			p.lists.allowListActive() || p.lists.restrictsKinds(),
		MinPoW: r.cfg.MinPoW,
	}
}

// Connect decides whether a new websocket from remote may open. When it
// may, release must be called once the connection ends.
func (p *Policy) Connect(remote string, now time.Time) (d wisp.Decision, release func()) {
	if p.lists.IPBlocked(remote) {
		return wisp.Rejected(wisp.PrefixBlocked, "your IP address is blocked"), nil
	}
	key := addrKey(remote)
	r := p.cur.Load()
	if !r.conn.allow(key, now) {
		return wisp.Rejected(wisp.PrefixRateLimited, fmt.Sprintf("too many new connections: at most %d per %s", r.cfg.ConnRateIP.N, r.cfg.ConnRateIP.Per)), nil
	}
	release, limit, ok := p.conns.acquire(key)
	if !ok {
		return wisp.Rejected(wisp.PrefixRateLimited, fmt.Sprintf("too many open connections from your IP address (at most %d)", limit)), nil
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
	r := p.cur.Load()
	if !r.req.allow(addrKey(in.Remote), now) {
		return wisp.Rejected(wisp.PrefixRateLimited, fmt.Sprintf("slow down: at most %d subscriptions per %s", r.cfg.ReqRateIP.N, r.cfg.ReqRateIP.Per))
	}
	if r.cfg.Auth == wisp.AuthAll {
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
	return p.cur.Load().early.Check(ctx, in)
}

// Late runs the rules that trust the signature or may block.
func (p *Policy) Late(ctx context.Context, in *wisp.Input) wisp.Decision {
	return p.cur.Load().late.Check(ctx, in)
}

// Check runs both stages, for events whose signature the caller checked
// already (imports, mirrors).
func (p *Policy) Check(ctx context.Context, in *wisp.Input) wisp.Decision {
	if d := p.Early(ctx, in); d.Action != wisp.Accept {
		return d
	}
	return p.Late(ctx, in)
}

// Close stops the plugin, if one runs, and those a reload replaced.
func (p *Policy) Close() error {
	p.reloadMu.Lock()
	p.closed = true
	for _, r := range p.retiring {
		if r.timer.Stop() { // not fired yet: close it now
			r.plugin.Close()
			p.retired.Done()
		}
	}
	p.retiring = nil
	p.reloadMu.Unlock()
	var err error
	if pl := p.cur.Load().plugin; pl != nil {
		err = pl.Close()
	}
	p.retired.Wait()
	return err
}
