package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/wisp-relay/wisp/policy"
	"github.com/wisp-relay/wisp/storage"
)

// Several wisp serve nodes on one PostgreSQL database (docs/scale-out.md):
// events other nodes store reach this node's subscribers through the
// relay's follower (relay.Config.FollowStore, always on in wisp serve);
// what this file adds is the moderation lists, which every node holds in
// memory and which an admin changes through one node's NIP-86 API.

// moderationPoll is how often the moderation lists are read again when the
// store cannot say that another node changed them (no storage.Watcher),
// and the longest a missed notice can go unnoticed when it can.
const moderationPoll = 2 * time.Second

// followModeration keeps admin's lists and settings in step with the
// database until ctx ends: at once when the store's Watcher announces a
// change, and every moderationPoll in any case.
func followModeration(ctx context.Context, store eventStore, admin *policy.Admin, log *slog.Logger) {
	changed := make(chan struct{}, 1)
	if w, ok := store.(storage.Watcher); ok {
		go func() {
			err := w.Watch(ctx, func(c storage.Change) {
				if c&storage.ChangedModeration == 0 {
					return
				}
				select { // Watch's fn must not block; one pending refresh covers all
				case changed <- struct{}{}:
				default:
				}
			})
			if ctx.Err() == nil {
				log.Warn("watch the database for other nodes' moderation changes; reading them every "+moderationPoll.String(), "err", err)
			}
		}()
	}
	t := time.NewTicker(moderationPoll)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
		err := refreshModeration(ctx, admin)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			log.Warn("read the moderation lists other nodes changed", "err", err)
			failing = true
		case err == nil && failing:
			log.Info("moderation lists read again")
			failing = false
		}
	}
}

// refreshModeration reads the stored lists and settings over admin's,
// taking turns with the admin's own changes.
func refreshModeration(ctx context.Context, admin *policy.Admin) error {
	return admin.Refresh(ctx)
}

// sharedWarnings are what wisp serve says at start about settings that a
// database shared by several nodes makes worth a look.
func (c Config) sharedWarnings() []string {
	if !c.usesPostgres() {
		return nil
	}
	var ws []string
	if c.groupsOn() {
		ws = append(ws, envPrefix+"GROUPS=on: NIP-29 group state is held by each node, loaded at start; "+
			"with several nodes, serve groups from one (docs/scale-out.md)")
	}
	if (c.groupsOn() || c.membershipOn()) && c.RelaySecretKey == "" {
		ws = append(ws, envPrefix+"RELAY_SECRET_KEY is empty: this node signs with the key in its own data directory; "+
			"give every node the same key")
	}
	return ws
}
