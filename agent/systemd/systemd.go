// Package systemd speaks the sd_notify protocol for Type=notify units: READY=1
// once the agent is started, WATCHDOG=1 at half of WatchdogSec while the
// agent's own health check passes, and STOPPING=1 on shutdown. Outside systemd
// (no NOTIFY_SOCKET) every call is a no-op.
package systemd

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends state changes to the service manager.
type Notifier struct {
	log *slog.Logger
}

// New returns a notifier.
func New(logger *slog.Logger) *Notifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{log: logger}
}

func (n *Notifier) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Debug("sd_notify failed", "state", state, "err", err)
	}
}

// Ready reports that start-up is complete, with a status line.
func (n *Notifier) Ready(status string) { n.notify(daemon.SdNotifyReady + "\nSTATUS=" + status) }

// Status updates the unit's status line.
func (n *Notifier) Status(status string) { n.notify("STATUS=" + status) }

// Stopping reports that shutdown has begun.
func (n *Notifier) Stopping() { n.notify(daemon.SdNotifyStopping) }

// Watchdog pings the watchdog at half of WatchdogSec until ctx ends, but only
// while healthy() reports true: a watchdog that only proves a ticker goroutine
// is alive would hide a wedged agent. It returns at once when the unit has no
// watchdog.
func (n *Notifier) Watchdog(ctx context.Context, healthy func() error) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := healthy(); err != nil {
			n.log.Error("health check failed; withholding watchdog ping", "err", err)
			continue
		}
		n.notify(daemon.SdNotifyWatchdog)
	}
}
