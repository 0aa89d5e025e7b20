package vboard

import (
	"testing"
	"time"
)

// WaitFor polls cond until it returns nil and fails the test with cond's last
// error when within has passed: the kernel creates device nodes, binds
// drivers and reports state a moment after the call that caused it. cond
// runs on the test's goroutine, so it may itself fail the test at once (an
// error that waiting will not cure).
func WaitFor(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
