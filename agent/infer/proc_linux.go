package infer

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts the model in its own process group, so that stopping it
// reaches whatever it started, and has the kernel kill it if the agent dies
// without stopping it (Pdeathsig), so a model never outlives its agent and
// holds the camera's results or its shared memory for the next one. The
// death signal follows the thread that started the process: if that thread
// ended while the agent runs (Go ends threads only behind LockOSThread), the
// model is killed early, and the runner restarts it like a crashed one.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the model's process group.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}
