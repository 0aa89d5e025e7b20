//go:build !linux

package infer

import (
	"os/exec"
	"syscall"
)

// sysProcAttr: outside Linux (development machines) the model keeps the
// agent's process group and only the process itself is signalled.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.Process != nil {
		_ = cmd.Process.Signal(sig)
	}
}
