package dhcp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Renewal conversations: their time limit and transmissions.
const (
	renewTimeout = 10 * time.Second
	renewTries   = 3
	retryFloor   = 10 * time.Second
)

// keep registers the lease and starts its keeper; reboot asks for an INIT-REBOOT first.
func (m *Manager) keep(l *Lease, reboot bool) {
	ctx, cancel := context.WithCancel(m.ctx)
	h := &held{lease: *l, cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	m.held[l.key()] = h
	m.obs.DHCPLeasesHeld(len(m.held))
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(h.done)
		m.run(ctx, h, reboot)
	}()
}

// run renews the lease at T1, rebinds at T2 and tries to get the same address back after
// expiry, until ctx ends (DEL or shutdown) or the pod's netns is gone.
func (m *Manager) run(ctx context.Context, h *held, reboot bool) {
	l := h.get()
	var wait time.Duration
	warned := false
	if !reboot {
		wait = l.untilNext(time.Now())
	}
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		now := time.Now()
		ph := l.phaseAt(now)
		if reboot {
			ph, reboot = rebooting, false
		}
		if ph == bound {
			wait = l.untilNext(now)
			continue
		}
		ack, err := m.renew(ctx, &l, ph)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errNetnsGone):
			m.log.Info("pod netns gone; DHCP lease no longer renewed (DEL forgets it)", l.attrs("err", err)...)
			return
		case err != nil:
			wait = l.retryAfter(now, l.retryFloor())
			m.log.Warn("DHCP lease not renewed", l.attrs("phase", ph.String(), "retryIn", wait.String(), "err", err)...)
			m.obs.DHCPRenewal(false)
			if errors.Is(err, errLeaseLost) && !warned {
				m.warnLost(&l, err)
				warned = true
			}
			continue
		}
		m.obs.DHCPRenewal(true)
		warned = false
		l.setACK(ack, time.Now())
		h.set(l)
		if err := m.store.save(&l); err != nil {
			m.log.Error("renewed DHCP lease not saved", l.attrs("err", err)...)
		}
		wait = l.untilNext(time.Now())
		m.log.Debug("DHCP lease renewed", l.attrs("phase", ph.String(), "next", wait.String())...)
	}
}

// retryFloor is the shortest wait before another attempt: 10s, or less when renewAfter asks
// for quicker renewals (down to 1s).
func (l *Lease) retryFloor() time.Duration {
	if l.RenewAfter.Duration > 0 {
		return min(retryFloor, max(l.RenewAfter.Duration, time.Second))
	}
	return retryFloor
}

// untilNext is the time until T1 (at least a moment).
func (l *Lease) untilNext(now time.Time) time.Duration {
	t1, _, _ := l.times()
	return max(t1.Sub(now), 0)
}

// renew runs one conversation for the lease in phase ph and returns the new ACK.
func (m *Manager) renew(ctx context.Context, l *Lease, ph phase) (*dhcpv4.DHCPv4, error) {
	select {
	case m.sem <- struct{}{}:
		defer func() { <-m.sem }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(ctx, renewTimeout)
	defer cancel()
	var src = l.IP()
	if ph == rebooting || ph == expired {
		src = nil
	}
	x, err := open(l.link(), src, firstWait(renewTimeout, renewTries), renewTries)
	if err != nil {
		return nil, err
	}
	ack, err := x.request(ctx, &l.Identity, l.ack, ph)
	x.close()
	var nak *nakError
	if err != nil && (ph == expired || errors.As(err, &nak)) {
		m.log.Warn("DHCP lease lost; asking for the same address again", l.attrs("phase", ph.String(), "err", err)...)
		if ack, err = reacquire(ctx, l); err != nil {
			err = fmt.Errorf("%w: %w", errLeaseLost, err)
		}
	}
	if err != nil {
		return nil, err
	}
	if !ack.YourIPAddr.Equal(l.IP()) {
		return nil, fmt.Errorf("server %s acknowledged %s instead of %s", ack.ServerIdentifier(), ack.YourIPAddr, l.IP())
	}
	return ack, nil
}

// errLeaseLost marks a lease the server no longer grants (expired unanswered, or refused)
// and did not give back.
var errLeaseLost = errors.New("lease lost")

// warnLost tells the pod's owner (a pod Event, from the daemon) that its address is no
// longer leased: the pod keeps it, and the server may hand it to another client.
func (m *Manager) warnLost(l *Lease, err error) {
	m.mu.Lock()
	warn := m.warn
	m.mu.Unlock()
	m.obs.DHCPLeaseLost()
	if warn == nil || l.Pod.Name == "" {
		return
	}
	warn(l.Pod.Namespace, l.Pod.Name, l.Pod.UID, ReasonLeaseLost, fmt.Sprintf(
		"network %q, interface %s: DHCP lease of %s lost (%v); the pod keeps the address, which the server may give to "+
			"another client: recreate the pod to get a new one", l.Network, l.IfName, l.IP(), err))
}

// reacquire asks for the lease's address again from INIT, on a conversation that listens to
// broadcast answers too (the address may no longer be the pod's to receive on).
func reacquire(ctx context.Context, l *Lease) (*dhcpv4.DHCPv4, error) {
	x, err := open(l.link(), nil, firstWait(renewTimeout, renewTries), renewTries)
	if err != nil {
		return nil, err
	}
	defer x.close()
	return x.reacquire(ctx, &l.Identity, l.IP())
}
