// Package reexec starts a copy of the running test binary, for tests that
// need a second process: one they can SIGKILL mid-write and replace with a
// fresh one on the same files, or a real daemon under a fake systemd.
//
// Under qemu-user the host kernel cannot execute a binary of the target
// architecture by itself (that needs a binfmt_misc registration, which CI
// does not set up), so the copy has to be started through the emulator.
// scripts/test-arm.sh names the emulator command in EDGE_AGENT_EXEC, and
// Command puts it in front (docs/protocols/hardware.md §5.3). Natively the
// variable is unset and the binary is started directly.
package reexec

import (
	"os"
	"os/exec"
	"strings"
)

// EnvExec is the environment variable holding the command that runs a
// target binary on this machine, with its arguments, e.g.
// "qemu-arm-static -cpu arm1176"; empty when binaries run natively.
const EnvExec = "EDGE_AGENT_EXEC"

// Command returns a command that runs the test binary (os.Args[0]) with
// args, through the emulator named in EDGE_AGENT_EXEC when it is set. The
// caller sets Env, Stdout and the like and starts it as with exec.Command;
// a signal sent to its Process reaches the copy also when it runs under
// qemu-user, which passes signals on to the program it emulates.
func Command(args ...string) *exec.Cmd {
	argv := append(strings.Fields(os.Getenv(EnvExec)), os.Args[0])
	argv = append(argv, args...)
	return exec.Command(argv[0], argv[1:]...)
}
