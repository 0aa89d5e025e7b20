//go:build unix

package command

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the command in its own process group and makes
// cancellation signal the whole group, so a wrapper script's children
// (sh -c 'ffmpeg … | …') stop with it instead of holding the pipe open.
// SIGTERM first lets rpicam-vid and ffmpeg release the camera cleanly.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
}

// killGroup makes sure nothing of the group survives once Wait returned.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
