// Package e2e holds the field-hardening suites that drive whole links under
// agent/supervisor against their in-process fakes. It has no production code:
// everything lives in _test.go files.
//
// The fault-injection suite (go test -run Fault ./e2e/) injects each kind of
// fault many times into every link (server kill and restart, connection
// reset, stalled peer, 5xx/BAD answers, expired credentials, slow network
// through internal/faultproxy) and checks that the link recovers every time,
// that no durable item is lost and that goroutines and heap stay flat. The
// count per cell is FAULT_COUNT (default 25, 10 with -short; FAULT_COUNT=100
// is the full campaign); FAULT_TABLE=path also writes the result table there
// as Markdown, FAULT_LINKS and FAULT_KINDS select cells (comma-separated
// words), FAULT_LOG=1 logs to stderr and FAULT_HEAPPROFILE=dir writes a heap
// profile per cell.
//
// TestTrustFaultHTTP runs the trust-boundary cells (a redirect to another
// host, a ten-year Retry-After; issue 13) over every link with the same
// machinery and variables; its table goes to FAULT_TABLE's name + "-trust".
package e2e
