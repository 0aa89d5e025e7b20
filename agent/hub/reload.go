package hub

import (
	"fmt"
	"slices"

	"github.com/edge-agent/edge-agent/sensors"
)

// This file holds what a configuration reload (SIGHUP, agent.Reload) needs
// from the hub besides Add and AddFailed: taking a sensor out, and starting
// a sensor's source afresh after the agent swapped the driver behind it.

// Remove takes the sensor name out of the hub: every subscription to it is
// closed (its channel too, as Close does for the whole hub), its source is
// stopped and waited for, so the device is released when Remove returns,
// and Subscribe no longer knows the name. A new sensor may then be added
// under the same name. The agent stops the links using the sensor first;
// a link still subscribed sees its channel closed.
func (h *Hub) Remove(name string) error {
	h.mu.Lock()
	f, ok := h.feeds[name]
	if !ok {
		h.mu.Unlock()
		return fmt.Errorf("hub: remove %q: %w", name, sensors.ErrUnknownSensor)
	}
	// Out of the map first, under h.mu: Subscribe holds h.mu from its
	// lookup until the subscription is in f.subs, so from here on no new
	// subscriber can reach f.
	delete(h.feeds, name)
	h.order = slices.DeleteFunc(h.order, func(n string) bool { return n == name })
	h.mu.Unlock()

	f.mu.Lock()
	subs := make([]*sub, 0, len(f.subs))
	for s := range f.subs {
		subs = append(subs, s)
	}
	f.mu.Unlock()
	for _, s := range subs {
		s.Close() // the last one stops the pump
	}
	f.waitStopped()
	return nil
}

// Restart ends the sensor's current run, if its source is running, so that
// the feed runs the source again at once: without backoff, not counted in
// Restarts, with a new watchdog (the first-sample timeout applies again).
// The subscriptions stay open and only see a pause. The agent calls it after
// it swapped the driver behind a source (a reloaded sensor config), so the
// new driver is opened once the old one has released the device: the feed
// starts the next run only after the current one's Run returned. A sensor
// without subscribers is left idle.
func (h *Hub) Restart(name string) error {
	h.mu.Lock()
	f, ok := h.feeds[name]
	h.mu.Unlock()
	if !ok {
		return fmt.Errorf("hub: restart %q: %w", name, sensors.ErrUnknownSensor)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// The worker set cancel for the pump it is running; cancelling it makes
	// pump return as for a stop (ctx.Err() != nil: no restart counted), and
	// the worker, seeing want still set, starts the next pump.
	// A pump waiting out a backoff is cut short the same way, so the new
	// driver is tried at once; the state says running again, as after the
	// backoff.
	if f.want && f.cancel != nil {
		f.cancel()
		f.state = StateRunning
	}
	return nil
}
