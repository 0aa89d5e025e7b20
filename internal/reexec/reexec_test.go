package reexec

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

const childEnv = "REEXEC_TEST_CHILD"

// TestMain plays the child: started by Command with childEnv set, it prints
// its arguments and exits before any test runs.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		fmt.Println("child:", strings.Join(os.Args[1:], " "))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestCommandArgv(t *testing.T) {
	t.Setenv(EnvExec, "")
	if got, want := Command("-test.run=^$").Args, []string{os.Args[0], "-test.run=^$"}; !slices.Equal(got, want) {
		t.Errorf("native: %q, want %q", got, want)
	}
	t.Setenv(EnvExec, " qemu-arm-static  -cpu arm1176 ")
	got := Command("a", "b c").Args
	if want := []string{"qemu-arm-static", "-cpu", "arm1176", os.Args[0], "a", "b c"}; !slices.Equal(got, want) {
		t.Errorf("emulated: %q, want %q", got, want)
	}
}

// TestCommandRunsACopy starts the test binary for real: natively, and under
// scripts/test-arm.sh through the emulator it names, which is the case the
// package exists for.
func TestCommandRunsACopy(t *testing.T) {
	cmd := Command("-test.run=^$", "marker")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%q: %v", cmd.Args, err)
	}
	if got := strings.TrimSpace(string(out)); got != "child: -test.run=^$ marker" {
		t.Fatalf("the copy printed %q", got)
	}
}
