package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/wisp-relay/wisp/groups"
	"github.com/wisp-relay/wisp/membership"
	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/relay"
)

// Communities: NIP-29 groups (WISP_GROUPS) and NIP-43 membership
// (WISP_MEMBERSHIP), both publishing events signed by the relay's own key
// (relaykey.go).

var (
	_ relay.Groups     = (*groups.Groups)(nil)
	_ relay.Membership = (*membership.Members)(nil)
	_ relay.Manager    = (*membership.Manager)(nil)
)

// validateCommunity checks the settings of this file.
func (c Config) validateCommunity() []error {
	var errs []error
	bad := func(name string, value any, reason string) {
		errs = append(errs, fmt.Errorf("%s%s=%q: %s", envPrefix, name, fmt.Sprint(value), reason))
	}
	if c.RelaySecretKey != "" {
		if _, err := parseSecretKey(c.RelaySecretKey); err != nil {
			errs = append(errs, fmt.Errorf("%sRELAY_SECRET_KEY: %w", envPrefix, err)) // the key itself stays out of messages
		}
	}
	if c.Groups != "on" && c.Groups != "off" {
		bad("GROUPS", c.Groups, "want on or off")
	}
	if _, err := policy.ParsePubkeys(c.GroupCreators); err != nil {
		bad("GROUP_CREATORS", c.GroupCreators, "want comma-separated pubkeys (64 hex characters or npub): "+err.Error())
	}
	if c.GroupsMax <= 0 {
		bad("GROUPS_MAX", c.GroupsMax, "must be positive")
	}
	if c.GroupMaxMembers <= 0 {
		bad("GROUP_MAX_MEMBERS", c.GroupMaxMembers, "must be positive")
	}
	if c.GroupEventMaxAge < 0 {
		bad("GROUP_EVENT_MAX_AGE", c.GroupEventMaxAge, "must not be negative")
	}
	if c.Membership != "on" && c.Membership != "off" {
		bad("MEMBERSHIP", c.Membership, "want on or off")
	}
	if c.MembershipInvites != "members" && c.MembershipInvites != "admins" {
		bad("MEMBERSHIP_INVITES", c.MembershipInvites, "want members or admins")
	}
	if c.MembershipInviteTTL <= 0 {
		bad("MEMBERSHIP_INVITE_TTL", c.MembershipInviteTTL, "must be positive")
	}
	if c.MembershipMaxMembers <= 0 {
		bad("MEMBERSHIP_MAX_MEMBERS", c.MembershipMaxMembers, "must be positive")
	}
	// The relay's own state events are its memory of groups and members:
	// a retention rule must not purge them.
	rules, _ := parseRetention(c.Retention) // validated in features.go
	kept := map[string][]int{"GROUPS": {39000, 39001, 39002, 39003, 39005}, "MEMBERSHIP": {13534, 33534}}
	for name, kinds := range kept {
		if (name == "GROUPS" && !c.groupsOn()) || (name == "MEMBERSHIP" && !c.membershipOn()) {
			continue
		}
		for _, r := range rules {
			for _, k := range kinds {
				if k >= r.MinKind && k <= r.MaxKind {
					bad("RETENTION", c.Retention, fmt.Sprintf("rule %s would purge kind %d, the state %s%s=on keeps; leave it out", r, k, envPrefix, name))
				}
			}
		}
	}
	return errs
}

func (c Config) groupsOn() bool     { return c.Groups == "on" }
func (c Config) membershipOn() bool { return c.Membership == "on" }

// community is the wired groups and membership of a serving relay.
type community struct {
	self    string // the relay's pubkey, "" without a key
	groups  *groups.Groups
	members *membership.Members
}

// newCommunity loads the relay's key (making it when groups or
// membership need one) and the groups' state from the store; membership
// works on the policy's allow list.
func newCommunity(ctx context.Context, c Config, store eventStore, acc *access, log *slog.Logger) (*community, error) {
	sk, pk, err := c.relayKey(c.groupsOn() || c.membershipOn())
	if err != nil {
		return nil, err
	}
	cm := &community{self: pk}
	if c.groupsOn() {
		creators, _ := policy.ParsePubkeys(c.GroupCreators)
		g, err := groups.New(groups.Config{
			SecretKey: sk, PublicKey: pk, Creators: creators,
			MaxGroups: c.GroupsMax, MaxMembers: c.GroupMaxMembers, MaxAge: c.GroupEventMaxAge,
			Logger: log,
		}, store)
		if err != nil {
			return nil, err
		}
		if err := g.Load(ctx); err != nil {
			return nil, err
		}
		cm.groups = g
	}
	if c.membershipOn() {
		m, err := membership.New(membership.Config{
			SecretKey: sk, PublicKey: pk, RelayURL: c.PublicURL,
			AdminsOnly: c.MembershipInvites == "admins", Admins: acc.admins,
			InviteTTL: c.MembershipInviteTTL, MaxMembers: c.MembershipMaxMembers,
			Logger: log,
		}, acc.policy.Lists(), acc.admin, store)
		if err != nil {
			return nil, err
		}
		cm.members = m
	}
	return cm, nil
}

// apply puts the groups and the relay's pubkey into a relay's config.
func (cm *community) apply(rc *relay.Config) {
	rc.Info.Self = cm.self
	if cm.groups != nil {
		rc.Groups = cm.groups
	}
	if cm.members != nil {
		rc.Membership = cm.members
		if rc.Manager != nil { // NIP-86 allowpubkey and the role methods tie to NIP-43
			rc.Manager = cm.members.Manager()
		}
	}
}

// start begins what runs beside the relay: deletions of groups under way,
// and a member list published if the allow list changed while stopped.
func (cm *community) start(ctx context.Context, rl *relay.Relay) error {
	if cm.groups != nil {
		cm.groups.Start()
	}
	if cm.members != nil {
		return cm.members.Start(ctx, rl.PublishOwn)
	}
	return nil
}

// close stops it, after the relay has drained.
func (cm *community) close() error {
	var errs []error
	if cm.groups != nil {
		errs = append(errs, cm.groups.Close())
	}
	return errors.Join(errs...)
}
