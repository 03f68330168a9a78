package membership

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wisp-relay/wisp/storage"
)

// Invite codes are single use and expire. They live in the database's
// moderation lists (storage.Moderation), so that `wisp invite`, run beside
// the relay, mints codes the relay takes; each entry's reason holds when
// it expires and who minted it.

// ListInvites is the moderation list of unused invite codes. Never rename it.
const ListInvites = "nip43_invites"

// Bounds of the codes waiting to be used: what members can make the relay
// hold by asking for codes.
const (
	maxInvites          = 10000 // all of them
	maxInvitesPerMinter = 10    // of one member
)

// OperatorMinter names the codes `wisp invite` mints.
const OperatorMinter = "operator"

// ErrTooManyInvites: the minter (or the relay) holds as many unused codes as
// it may.
var ErrTooManyInvites = errors.New("too many unused invite codes")

// invite is one unused code.
type invite struct {
	expires time.Time
	minter  string
}

func (iv invite) reason() string {
	return strconv.FormatInt(iv.expires.Unix(), 10) + " " + iv.minter
}

func parseInvite(reason string) (invite, bool) {
	at, minter, ok := strings.Cut(reason, " ")
	unix, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil {
		return invite{}, false
	}
	return invite{expires: time.Unix(unix, 0), minter: minter}, true
}

// newCode is 80 random bits in lowercase base32: 16 characters to paste.
func newCode() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// loadInvites reads the unused codes, expired ones too: a claim of one is
// told it expired (and removes it).
func loadInvites(ctx context.Context, st storage.Moderation) (map[string]invite, error) {
	entries, err := st.ListEntries(ctx, ListInvites)
	if err != nil {
		return nil, fmt.Errorf("load invite codes: %w", err)
	}
	out := make(map[string]invite, len(entries))
	for _, e := range entries {
		if iv, ok := parseInvite(e.Reason); ok {
			out[e.Key] = iv
		}
	}
	return out, nil
}

// MintInvite stores a new code minted by minter, valid for ttl, and
// returns it. Expired codes are removed first; past the bounds (per minter
// but for the operator, and in all) it returns ErrTooManyInvites.
func MintInvite(ctx context.Context, st storage.Moderation, minter string, ttl time.Duration, now time.Time) (string, error) {
	entries, err := st.ListEntries(ctx, ListInvites)
	if err != nil {
		return "", fmt.Errorf("read invite codes: %w", err)
	}
	live, mine := 0, 0
	for _, e := range entries {
		iv, ok := parseInvite(e.Reason)
		if !ok || !now.Before(iv.expires) {
			if _, err := st.DeleteListEntry(ctx, ListInvites, e.Key); err != nil {
				return "", fmt.Errorf("remove an expired invite code: %w", err)
			}
			continue
		}
		live++
		if iv.minter == minter {
			mine++
		}
	}
	if live >= maxInvites || (minter != OperatorMinter && mine >= maxInvitesPerMinter) {
		return "", ErrTooManyInvites
	}
	code := newCode()
	iv := invite{expires: now.Add(ttl), minter: minter}
	if err := st.PutListEntry(ctx, ListInvites, code, iv.reason()); err != nil {
		return "", fmt.Errorf("store an invite code: %w", err)
	}
	return code, nil
}
