package dhcp

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// stallAfter is how long renewals may make no progress, every slot taken, before the lease
// manager counts as wedged: a renewal conversation ends within renewTimeout.
const stallAfter = 6 * renewTimeout

// Why the lease manager is not ready (Ready wraps them).
var (
	errNotReloaded = errors.New("DHCP leases not reloaded yet")
	errStopped     = errors.New("DHCP lease manager stopped")
	errWedged      = errors.New("DHCP lease renewals wedged")
)

// Ready says why the lease manager cannot keep leases, or nil: it has reloaded the leases
// kept on disk (Start), it has not been stopped, and its renewals make progress (no renewal
// has ended for stallAfter while every renewal slot is taken). A DHCP server that does not
// answer is not a fault of the manager: failed renewals are progress too.
func (m *Manager) Ready() error { return m.readyAt(time.Now()) }

func (m *Manager) readyAt(now time.Time) error {
	m.mu.Lock()
	started, ctx := m.started, m.ctx
	m.mu.Unlock()
	switch {
	case started.IsZero():
		return errNotReloaded
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", errStopped, context.Cause(ctx))
	}
	if len(m.sem) < cap(m.sem) {
		return nil
	}
	if quiet := now.Sub(time.Unix(0, m.renewed.Load())); quiet > stallAfter {
		return fmt.Errorf("%w: all %d renewal slots taken and none has ended for %s (one takes at most %s)",
			errWedged, cap(m.sem), quiet.Round(time.Second), renewTimeout)
	}
	return nil
}

// markStarted records that Start has reloaded the leases at now.
func (m *Manager) markStarted(now time.Time) {
	m.renewed.Store(now.UnixNano())
	m.mu.Lock()
	m.started = now
	m.mu.Unlock()
}

// heartbeat passes the lease manager's counts on and stamps the end of every renewal
// conversation, ok or failed, in last.
type heartbeat struct {
	Observer
	last *atomic.Int64
}

func (h heartbeat) DHCPRenewal(ok bool) {
	h.last.Store(time.Now().UnixNano())
	h.Observer.DHCPRenewal(ok)
}
