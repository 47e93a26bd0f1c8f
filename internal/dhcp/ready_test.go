package dhcp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestReadyOnceReloadedUntilStopped: the lease manager is not ready before it has reloaded
// its leases, ready after, wedged while every renewal slot stays taken with no renewal
// ending (and ready again once one ends), and not ready once stopped.
func TestReadyOnceReloadedUntilStopped(t *testing.T) {
	m, err := New(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ready(); !errors.Is(err, errNotReloaded) {
		t.Errorf("before Start: Ready() = %v, want %v", err, errNotReloaded)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.Start(ctx)
	if err := m.Ready(); err != nil {
		t.Errorf("after Start: Ready() = %v", err)
	}

	// renewal conversations hang in every slot (as a stuck exchange would leave them)
	for range cap(m.sem) {
		m.sem <- struct{}{}
	}
	if err := m.readyAt(time.Now().Add(stallAfter / 2)); err != nil {
		t.Errorf("all slots taken for %s: Ready() = %v, want nil (conversations take up to %s)", stallAfter/2, err, renewTimeout)
	}
	later := time.Now().Add(stallAfter + time.Minute)
	err = m.readyAt(later)
	if !errors.Is(err, errWedged) || !strings.Contains(err.Error(), "all 32 renewal slots taken") {
		t.Errorf("all slots taken, no renewal ended for %s: Ready() = %v, want %v", stallAfter+time.Minute, err, errWedged)
	}
	m.obs.DHCPRenewal(false) // a failed renewal is progress: the server may be down, not the manager
	if err := m.readyAt(time.Now().Add(time.Second)); err != nil {
		t.Errorf("a renewal ended: Ready() = %v", err)
	}
	for range cap(m.sem) {
		<-m.sem
	}
	if err := m.readyAt(later); err != nil {
		t.Errorf("slots free, no renewal due: Ready() = %v", err)
	}

	cancel()
	m.Wait()
	if err := m.Ready(); !errors.Is(err, errStopped) {
		t.Errorf("after stop: Ready() = %v, want %v", err, errStopped)
	}
}
