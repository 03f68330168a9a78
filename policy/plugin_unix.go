//go:build unix

package policy

import (
	"errors"
	"os/exec"
	"syscall"
)

func isTextBusy(err error) bool { return errors.Is(err, syscall.ETXTBSY) }

// setProcessGroup runs the plugin in a process group of its own, so that
// killing it also kills what a shell command started.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
}
