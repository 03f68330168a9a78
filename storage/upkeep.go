package storage

import (
	"log/slog"
	"strconv"
	"time"
)

// Upkeep is the background work an engine does for itself from Open to
// Close, so that every program that opens a store gets a correct one:
// deleting expired events (NIP-40) and those past their retention. Engines
// add their own work (SQLite's checkpoints and search index) to it.
type Upkeep struct {
	// Sweep is how often expired events and events past Retention are
	// deleted (0: every minute). Queries never serve expired events
	// meanwhile.
	Sweep time.Duration
	// Retention deletes old events of some kinds.
	Retention []RetentionRule
	// Logger gets what goes wrong in the background (nil: discard).
	Logger *slog.Logger
}

// RetentionRule keeps the events of kinds MinKind to MaxKind for at most
// MaxAge, by created_at.
type RetentionRule struct {
	MinKind, MaxKind int
	MaxAge           time.Duration
}

func (r RetentionRule) String() string {
	kinds := strconv.Itoa(r.MinKind)
	switch {
	case r.MinKind == 0 && r.MaxKind == 65535:
		kinds = "*"
	case r.MaxKind != r.MinKind:
		kinds += "-" + strconv.Itoa(r.MaxKind)
	}
	return kinds + ":" + r.MaxAge.String()
}
