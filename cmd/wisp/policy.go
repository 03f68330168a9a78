package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/wisp-relay/wisp"
	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/relay"
)

// The concrete policy and NIP-86 admin meet the relay's interfaces here,
// where they are wired, so that relay needs no import of policy.
var (
	_ relay.Policy  = (*policy.Policy)(nil)
	_ relay.Manager = (*policy.Admin)(nil)
)

// validatePolicy checks the settings of who may write and read.
func (c Config) validatePolicy() []error {
	var errs []error
	bad := func(name, value, reason string) {
		errs = append(errs, fmt.Errorf("%s%s=%q: %s", envPrefix, name, value, reason))
	}
	if _, err := wisp.ParseAuthMode(c.Auth); err != nil {
		bad("AUTH", c.Auth, "want open, write or all")
	}
	for _, v := range []struct{ name, value string }{
		{"ALLOW_PUBKEYS", c.AllowPubkeys}, {"DENY_PUBKEYS", c.DenyPubkeys}, {"ADMIN_PUBKEYS", c.AdminPubkeys},
	} {
		if _, err := policy.ParsePubkeys(v.value); err != nil {
			bad(v.name, v.value, "want comma-separated pubkeys (64 hex characters or npub): "+err.Error())
		}
	}
	for _, v := range []struct{ name, value string }{{"ALLOW_KINDS", c.AllowKinds}, {"DENY_KINDS", c.DenyKinds}} {
		if _, err := policy.ParseKinds(v.value); err != nil {
			bad(v.name, v.value, "want kinds and ranges such as 0,1,30000-39999: "+err.Error())
		}
	}
	for _, v := range []struct{ name, value string }{
		{"EVENT_RATE_IP", c.EventRateIP}, {"EVENT_RATE_PUBKEY", c.EventRatePubkey},
		{"REQ_RATE_IP", c.ReqRateIP}, {"CONN_RATE_IP", c.ConnRateIP},
	} {
		if _, err := policy.ParseRate(v.value); err != nil {
			bad(v.name, v.value, "want N/period such as 20/1m: "+err.Error())
		}
	}
	if c.MinPoW < 0 || c.MinPoW > 256 {
		bad("MIN_POW", fmt.Sprint(c.MinPoW), "want 0 to 256 bits")
	}
	if c.MaxConnsPerIP < 0 {
		bad("MAX_CONNS_PER_IP", fmt.Sprint(c.MaxConnsPerIP), "must not be negative")
	}
	if c.WritePolicyTimeout <= 0 {
		bad("WRITE_POLICY_TIMEOUT", c.WritePolicyTimeout.String(), "must be positive")
	}
	if p := strings.TrimSpace(c.WritePolicyPlugin); p != "" && !strings.ContainsAny(p, " \t") {
		if fi, err := os.Stat(p); err != nil {
			bad("WRITE_POLICY_PLUGIN", p, "cannot find the program: "+err.Error())
		} else if fi.IsDir() || fi.Mode()&0o111 == 0 {
			bad("WRITE_POLICY_PLUGIN", p, "is not an executable file")
		}
	}
	if strings.ContainsAny(c.RealIPHeader, " :\t") {
		bad("REAL_IP_HEADER", c.RealIPHeader, "want a header name such as X-Forwarded-For")
	}
	return errs
}

// policyConfig is the policy these settings describe; c has been validated.
func (c Config) policyConfig(log *slog.Logger) policy.Config {
	mode, _ := wisp.ParseAuthMode(c.Auth)
	rate := func(s string) policy.Rate { r, _ := policy.ParseRate(s); return r }
	return policy.Config{
		Auth:            mode,
		MinPoW:          c.MinPoW,
		EventRateIP:     rate(c.EventRateIP),
		EventRatePubkey: rate(c.EventRatePubkey),
		ReqRateIP:       rate(c.ReqRateIP),
		ConnRateIP:      rate(c.ConnRateIP),
		MaxConnsPerIP:   c.MaxConnsPerIP,
		Plugin:          strings.TrimSpace(c.WritePolicyPlugin),
		PluginTimeout:   c.WritePolicyTimeout,
		Logger:          log,
	}
}

// lists are the fixed moderation lists of the configuration.
func (c Config) lists() *policy.Lists {
	return policy.NewLists(c.fixedLists())
}

// fixedLists are the pubkey and kind lists of the configuration; c has
// been validated.
func (c Config) fixedLists() (allow, deny []string, allowKinds, denyKinds policy.KindSet) {
	allow, _ = policy.ParsePubkeys(c.AllowPubkeys)
	deny, _ = policy.ParsePubkeys(c.DenyPubkeys)
	allowKinds, _ = policy.ParseKinds(c.AllowKinds)
	denyKinds, _ = policy.ParseKinds(c.DenyKinds)
	return allow, deny, allowKinds, denyKinds
}

// access is the wired policy and management API of a serving relay.
type access struct {
	policy *policy.Policy
	admin  *policy.Admin
	admins []string
}

// newAccess builds the policy over the lists from the configuration and
// the database, and the NIP-86 admin over the same lists.
func newAccess(ctx context.Context, c Config, store eventStore, log *slog.Logger) (*access, error) {
	lists := c.lists()
	admin := policy.NewAdmin(lists, store, store, log)
	if err := admin.Load(ctx); err != nil {
		return nil, fmt.Errorf("load moderation state: %w", err)
	}
	p, err := policy.New(c.policyConfig(log), lists)
	if err != nil {
		return nil, err
	}
	admins, _ := policy.ParsePubkeys(c.AdminPubkeys)
	return &access{policy: p, admin: admin, admins: admins}, nil
}

// apply puts the policy and the management API into a relay's config.
func (a *access) apply(rc *relay.Config, c Config) {
	rc.Policy = a.policy
	rc.RealIPHeader = c.RealIPHeader
	if len(a.admins) > 0 {
		rc.Manager = a.admin
		rc.AdminPubkeys = a.admins
	}
}
