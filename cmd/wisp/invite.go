package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/wisp-relay/wisp/membership"
)

const inviteUsage = `Usage: wisp invite [--count N] [--ttl DURATION]

Mints NIP-43 invite codes for this relay (WISP_MEMBERSHIP=on) and prints
them, one per line. A user joins by sending a join request (kind 28934)
with the code in its claim tag; each code admits one member and expires
after --ttl (default WISP_MEMBERSHIP_INVITE_TTL). The relay may keep
running: the codes are stored in its database.
`

// maxMint bounds the codes one wisp invite makes.
const maxMint = 1000

// runInvite is "wisp invite".
func runInvite(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("invite", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	count := fs.Int("count", 1, "codes to mint")
	ttl := fs.Duration("ttl", 0, "how long each stays valid")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, err = fmt.Fprint(stdout, inviteUsage)
			return err
		}
		return &usageError{"invite", "invite: " + err.Error()}
	}
	switch {
	case fs.NArg() > 0:
		return &usageError{"invite", fmt.Sprintf("invite takes no arguments, got %q", fs.Args())}
	case *count < 1 || *count > maxMint:
		return &usageError{"invite", fmt.Sprintf("invite: --count must be 1 to %d", maxMint)}
	case *ttl < 0:
		return &usageError{"invite", "invite: --ttl must be positive"}
	}
	return withStore(ctx, environ, func(cfg Config, store eventStore) error {
		if !cfg.membershipOn() {
			fmt.Fprintln(stderr, "wisp: note: WISP_MEMBERSHIP is off; the codes work once it is on")
		}
		d := *ttl
		if d == 0 {
			d = cfg.MembershipInviteTTL
		}
		for range *count {
			code, err := membership.MintInvite(ctx, store, membership.OperatorMinter, d, time.Now())
			if err != nil {
				return fmt.Errorf("mint invite code: %w", err)
			}
			if _, err := fmt.Fprintln(stdout, code); err != nil {
				return err
			}
		}
		return nil
	})
}
