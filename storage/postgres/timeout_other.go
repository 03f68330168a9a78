//go:build !linux

package postgres

import (
	"syscall"
	"time"
)

// userTimeout does nothing outside Linux: keepalive and the per-call
// deadlines remain.
func userTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
