package wisp

import (
	"errors"
	"fmt"
)

// AuthMode says what NIP-42 authentication is required for.
type AuthMode uint8

const (
	// AuthOpen: anyone may read and write; AUTH is optional (needed only
	// for private messages and protected events).
	AuthOpen AuthMode = iota
	// AuthWrite: publishing needs AUTH first.
	AuthWrite
	// AuthAll: reading and publishing need AUTH first (a private relay).
	AuthAll
)

// ParseAuthMode reads "open", "write" or "all".
func ParseAuthMode(s string) (AuthMode, error) {
	switch s {
	case "open", "":
		return AuthOpen, nil
	case "write":
		return AuthWrite, nil
	case "all":
		return AuthAll, nil
	}
	return 0, fmt.Errorf("%q: want open, write or all", s)
}

func (m AuthMode) String() string {
	switch m {
	case AuthWrite:
		return "write"
	case AuthAll:
		return "all"
	}
	return "open"
}

// Limitation is what NIP-11 advertises about the policy in force.
type Limitation struct {
	AuthRequired     bool // reads and writes need AUTH
	RestrictedWrites bool // some events are refused for who or what they are
	MinPoW           int
}

// RelayInfo is the part of the relay's description an admin may change
// over NIP-86.
type RelayInfo struct {
	Name, Description, Icon string
}

// Errors of NIP-86 calls; their text reaches the admin.
var (
	ErrUnknownMethod = errors.New("unknown method")
	ErrBadParams     = errors.New("invalid params")
)
