//go:build unix

package bench

import (
	"fmt"
	"syscall"
)

// raiseOpenFiles makes sure this process may open need files: the idle
// phase alone holds thousands of sockets. It raises the soft limit as far
// as the hard one allows (Go already raises it at start-up, but only for
// itself and not above the hard limit) and returns the limit in force.
func raiseOpenFiles(need uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("get open file limit: %w", err)
	}
	if lim.Cur >= need {
		return lim.Cur, nil
	}
	want := lim
	want.Cur = min(need, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return lim.Cur, fmt.Errorf("raise open file limit to %d: %w", want.Cur, err)
	}
	return want.Cur, nil
}
