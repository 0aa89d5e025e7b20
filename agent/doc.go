// Package agent is the composition root: it turns a loaded config into a
// running daemon (sensor hub, one supervisor per link, per-link spools, the
// status server, systemd notifications) and owns every goroutine it starts.
//
// Start-up order: state_dir, the hub with every sensor registered (devices are
// opened only when a link subscribes), the links' spools and supervisors, the
// status server, then READY=1. The cloud connections are not awaited: a Pi in
// a field is "started" when it is capturing, not when the uplink is good.
//
// Shutdown order (on ctx cancel, budget ShutdownTimeout, below systemd's
// TimeoutStopSec): STOPPING=1; cancel the links, whose sessions close their
// sensor subscriptions and whose spool workers stop between items (spooled
// data is already durable); wait for the supervisors; close the hub, which
// stops any source still running and releases the devices; stop the status
// server last so /status answers while links wind down.
package agent
