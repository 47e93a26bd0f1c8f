// Package dhcp is multinetd's DHCP lease manager, the daemon side of the multinet-dhcp IPAM
// plugin: for each pod interface it runs the DHCP client inside the pod's network namespace,
// keeps the lease on disk, renews it at T1 and rebinds at T2 for as long as the pod lives,
// picks leases up again after a daemon restart (INIT-REBOOT, without touching the pod), and
// releases it on DEL. It turns the server's options (router, classless and classful static
// routes, DNS, MTU) into the CNI result under the network's router mode; options it does not
// use or cannot parse are logged and left out, never fatal.
package dhcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/keylock"
)

// maxRenewing bounds the DHCP conversations renewals run at once (ADDs are bounded by the
// daemon's delegate slots).
const maxRenewing = 32

// Manager holds the leases of a node's pods.
type Manager struct {
	store store
	addrs *recall // the address each pod's interface had last
	log   *slog.Logger
	sem   chan struct{}
	locks keylock.Locks // per attachment: its ADD, DEL, GC
	ids   keylock.Locks // per client identifier: a new lease's conversation, a RELEASE (see release)
	hooks hooks

	mu      sync.Mutex
	warn    Warner
	obs     Observer // wrapped in a heartbeat that stamps renewed
	held    map[string]*held
	ctx     context.Context // lifetime of the keepers, from Start
	started time.Time       // when Start had reloaded the leases (see Ready)
	wg      sync.WaitGroup
	renewed atomic.Int64 // UnixNano of the end of the last renewal conversation, or of Start
}

// hooks let a test hold the manager at a point of its work, to force an interleaving;
// nil in the daemon.
type hooks struct {
	acquired     func(l *Lease) // ADD got its DHCPACK, before the lease is kept
	identityWait func(l *Lease) // DEL is about to wait for the lease's client identifier
}

// Warner puts a Warning Event on a pod (uid may be empty).
type Warner func(namespace, name, uid, reason, message string)

// Observer counts what the lease manager does: multinetd's Prometheus metrics.
type Observer interface {
	DHCPLeasesHeld(n int) // after each change of the number of leases held
	DHCPRenewal(ok bool)  // after each renewal conversation
	DHCPLeaseLost()       // once per lease the server no longer grants
}

type noObserver struct{}

func (noObserver) DHCPLeasesHeld(int) {}
func (noObserver) DHCPRenewal(bool)   {}
func (noObserver) DHCPLeaseLost()     {}

// ReasonLeaseLost is the Event reason for a pod whose lease the server no longer grants.
const ReasonLeaseLost = "DHCPLeaseLost"

// held is a lease and the goroutine that keeps it.
type held struct {
	mu     sync.Mutex
	lease  Lease
	cancel context.CancelFunc
	done   chan struct{}
}

func (h *held) get() Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lease
}

func (h *held) set(l Lease) {
	h.mu.Lock()
	h.lease = l
	h.mu.Unlock()
}

// New opens the lease directory. Call Start before serving.
func New(dir string, log *slog.Logger) (*Manager, error) {
	s, err := openStore(dir)
	if err != nil {
		return nil, err
	}
	addrs, err := openRecall(filepath.Join(dir, "addresses"), time.Now())
	if err != nil {
		return nil, err
	}
	m := &Manager{store: s, addrs: addrs, log: log, sem: make(chan struct{}, maxRenewing), held: map[string]*held{},
		ctx: context.Background()}
	m.obs = heartbeat{noObserver{}, &m.renewed}
	return m, nil
}

// SetObserver sets who counts leases, renewals and losses; call it before Start.
func (m *Manager) SetObserver(o Observer) {
	m.mu.Lock()
	m.obs = heartbeat{o, &m.renewed}
	m.obs.DHCPLeasesHeld(len(m.held))
	m.mu.Unlock()
}

// SetWarner sets who is told about lost leases (nil: nobody); it may be called at any time.
func (m *Manager) SetWarner(w Warner) {
	m.mu.Lock()
	m.warn = w
	m.mu.Unlock()
}

// Start reloads the leases kept on disk and keeps each one (an INIT-REBOOT first, since the
// daemon may have missed a renewal) until DEL or until ctx ends.
func (m *Manager) Start(ctx context.Context) {
	m.mu.Lock()
	m.ctx = ctx
	m.mu.Unlock()
	leases, errs := m.store.all()
	for _, err := range errs {
		m.log.Error("DHCP lease not reloaded", "err", err)
	}
	for _, l := range leases {
		m.keep(l, true)
	}
	m.markStarted(time.Now())
	m.log.Info("DHCP leases reloaded", "count", len(leases), "dir", m.store.dir)
}

// Wait returns once every keeper has stopped (after Start's ctx ended). Leases stay on disk
// and with the server: the next start renews them.
func (m *Manager) Wait() { m.wg.Wait() }

// Add gets a lease for the interface (or returns the one it holds) and returns the CNI
// result in the network's version.
func (m *Manager) Add(ctx context.Context, in *cniapi.Request) (json.RawMessage, error) {
	req, err := decode(in)
	if err != nil {
		return nil, cniError(types.ErrInvalidNetworkConfig, err)
	}
	if in.ContainerID == "" || in.IfName == "" || in.Netns == "" {
		return nil, cniError(types.ErrInvalidEnvironmentVariables,
			errors.New("multinet-dhcp needs CNI_CONTAINERID, CNI_IFNAME and CNI_NETNS"))
	}
	defer m.locks.Lock(key(in.ContainerID, in.IfName))()
	l := m.current(req)
	if l == nil {
		if l, err = m.acquire(ctx, req); err != nil {
			err = fmt.Errorf("pod %s, network %q, interface %s: %w", req.pod, req.network, in.IfName, err)
			if errors.Is(err, errNoAnswer) {
				return nil, cniError(types.ErrTryAgainLater, err)
			}
			return nil, cniError(types.ErrInternal, err)
		}
	}
	s := interpret(l.ack, &req.conf)
	return cniapi.Render(s.Result(req.conf.Priority), req.version)
}

// current is the lease held for the request's interface in the same netns (a repeated ADD);
// one held for another netns (a reused container ID) is released first.
func (m *Manager) current(req *request) *Lease {
	h := m.lookup(key(req.ContainerID, req.IfName))
	if h == nil {
		return nil
	}
	if l := h.get(); l.Netns == req.Netns {
		return &l
	}
	m.forget(key(req.ContainerID, req.IfName), true)
	return nil
}

// acquire runs DISCOVER..ACK within the network's timeout (asking for the address the pod's
// interface had last, if it is remembered), applies the MTU, keeps the lease on disk and
// starts its keeper.
func (m *Manager) acquire(ctx context.Context, req *request) (*Lease, error) {
	id, err := identityFor(req)
	if err != nil {
		return nil, err
	}
	l := &Lease{ContainerID: req.ContainerID, IfName: req.IfName, Netns: req.Netns, Network: req.network,
		ConfName: req.confName, Pod: req.pod, Identity: id, RenewAfter: req.conf.RenewAfter, Uplink: req.bridge}
	defer m.ids.Lock(string(id.ClientID))()
	ctx, cancel := context.WithTimeout(ctx, req.conf.Timeout.Duration)
	defer cancel()
	x, err := open(l.link(), nil, firstWait(req.conf.Timeout.Duration, req.conf.Retries), req.conf.Retries)
	if err != nil {
		return nil, err
	}
	l.HWAddr = x.hw.String()
	want := m.addrs.lookup(req, time.Now())
	ack, err := x.discover(ctx, &id, want)
	x.close()
	if err != nil {
		return nil, err
	}
	l.setACK(ack, time.Now())
	if m.hooks.acquired != nil {
		m.hooks.acquired(l)
	}
	s := interpret(ack, &req.conf)
	if s.MTU > 0 {
		if err := setMTU(l.link(), s.MTU); err != nil {
			s.Ignored = append(s.Ignored, fmt.Sprintf("option 26 (MTU %d): %v", s.MTU, err))
		}
	}
	if err := m.store.save(l); err != nil {
		m.sendRelease(l, true)
		return nil, err
	}
	m.keep(l, false)
	m.log.Info("DHCP lease acquired", l.attrs("server", ack.ServerIdentifier().String(),
		"lease", ack.IPAddressLeaseTime(0).String(), "asked", want, "ignored", s.Ignored)...)
	return l, nil
}

// Del releases the interface's lease and forgets it. Without a netns (the runtime passes
// none once it is gone) the release goes out on the host bridge of a bridge network, or not
// at all; the lease is forgotten either way. DEL of an unknown interface succeeds.
func (m *Manager) Del(_ context.Context, in *cniapi.Request) error {
	if in.ContainerID == "" || in.IfName == "" {
		return cniError(types.ErrInvalidEnvironmentVariables, errors.New("multinet-dhcp needs CNI_CONTAINERID and CNI_IFNAME"))
	}
	k := key(in.ContainerID, in.IfName)
	defer m.locks.Lock(k)()
	if m.forget(k, in.Netns != "") {
		return nil
	}
	l, err := m.store.load(in.ContainerID, in.IfName)
	if err != nil {
		m.log.Warn("unreadable DHCP lease forgotten", "containerID", in.ContainerID, "ifname", in.IfName, "err", err)
	}
	if l == nil {
		return m.store.remove(in.ContainerID, in.IfName)
	}
	return m.giveUp(l, in.Netns != "")
}

// forget stops the keeper of a held lease, releases it and removes it from disk; it reports
// whether the lease was held. podAlive is false when the runtime passed no netns.
func (m *Manager) forget(k string, podAlive bool) bool {
	m.mu.Lock()
	h := m.held[k]
	delete(m.held, k)
	m.obs.DHCPLeasesHeld(len(m.held))
	m.mu.Unlock()
	if h == nil {
		return false
	}
	h.cancel()
	<-h.done
	l := h.get()
	if err := m.giveUp(&l, podAlive); err != nil {
		m.log.Error("DHCP lease file not removed", l.attrs("err", err)...)
	}
	m.log.Info("DHCP lease forgotten", l.attrs()...)
	return true
}

// giveUp releases a lease that is no longer held, remembers its address for the pod's next
// sandbox and removes its file.
func (m *Manager) giveUp(l *Lease, podAlive bool) error {
	m.release(l, podAlive)
	if err := m.addrs.remember(l, time.Now()); err != nil {
		m.log.Warn("address not remembered for the pod's next sandbox", l.attrs("err", err)...)
	}
	return m.store.remove(l.ContainerID, l.IfName)
}

// release sends DHCPRELEASE for a lease no longer held, unless another held lease has its
// address or its client identifier from the same server: the pod's new sandbox, whose client
// identifier is the same (the pod UID's), got it back before the runtime deleted the old one.
// It waits for a conversation of a new lease with the same client identifier (the new
// sandbox's ADD) to end first, so that the lease it gets is held when release looks.
func (m *Manager) release(l *Lease, podAlive bool) {
	if m.hooks.identityWait != nil {
		m.hooks.identityWait(l)
	}
	defer m.ids.Lock(string(l.Identity.ClientID))()
	if other := m.holder(l); other != nil {
		m.log.Info("DHCPRELEASE not sent: another sandbox holds the address or client identifier",
			l.attrs("heldBy", other.ContainerID, "heldOn", other.IfName)...)
		return
	}
	m.sendRelease(l, podAlive)
}

// sendRelease sends DHCPRELEASE from the first of the lease's release links that works; if
// none does, that is logged (the server reclaims the address at expiry).
func (m *Manager) sendRelease(l *Lease, podAlive bool) {
	hw, _ := net.ParseMAC(l.HWAddr)
	var errs []error
	for _, lk := range l.releaseLinks(podAlive) {
		x, err := open(lk, l.IP(), time.Second, 1)
		if err == nil {
			err = x.release(&l.Identity, l.ack, hw)
			x.close()
		}
		if err == nil {
			m.log.Debug("DHCPRELEASE sent", l.attrs("via", lk.IfName)...)
			return
		}
		errs = append(errs, err)
	}
	m.log.Info("DHCPRELEASE not sent; the server reclaims the address when the lease expires",
		l.attrs("err", errors.Join(errs...))...)
}

// Check succeeds while the interface holds an unexpired lease.
func (m *Manager) Check(_ context.Context, in *cniapi.Request) error {
	h := m.lookup(key(in.ContainerID, in.IfName))
	if h == nil {
		return cniError(types.ErrInternal, fmt.Errorf("no DHCP lease for %s of container %s", in.IfName, in.ContainerID))
	}
	l := h.get()
	if l.phaseAt(time.Now()) == expired {
		return cniError(types.ErrInternal, fmt.Errorf("DHCP lease of %s on %s expired at %s", l.IP(), in.IfName,
			l.Bound.Add(l.ack.IPAddressLeaseTime(0)).Format(time.RFC3339)))
	}
	return nil
}

// GC releases the leases of the network whose attachment is not in the valid list (CNI 1.1).
func (m *Manager) GC(_ context.Context, in *cniapi.Request) error {
	var conf struct {
		Name  string               `json:"name"`
		Valid []types.GCAttachment `json:"cni.dev/valid-attachments"`
	}
	if err := json.Unmarshal(in.Config, &conf); err != nil {
		return cniError(types.ErrDecodingFailure, fmt.Errorf("GC configuration: %w", err))
	}
	valid := map[string]bool{}
	for _, a := range conf.Valid {
		valid[key(a.ContainerID, a.IfName)] = true
	}
	m.mu.Lock()
	var stale []string
	for k, h := range m.held {
		if l := h.get(); l.ConfName == conf.Name && !valid[k] {
			stale = append(stale, k)
		}
	}
	m.mu.Unlock()
	for _, k := range stale {
		unlock := m.locks.Lock(k)
		m.forget(k, true)
		unlock()
	}
	return nil
}

// DNS is the DNS of the lease held for the interface, empty when none is held. It is the
// IPAM result's, which macvlan, ipvlan and vlan replace with their conf's "dns" (usually
// empty): network-status reports it when the plugin's result has none (status.Network.IPAMDNS).
func (m *Manager) DNS(containerID, ifname string) types.DNS {
	h := m.lookup(key(containerID, ifname))
	if h == nil {
		return types.DNS{}
	}
	l := h.get()
	return dnsOf(l.ack)
}

// Status is ready whenever the daemon answers.
func (m *Manager) Status(context.Context, *cniapi.Request) error { return nil }

// Held is the number of leases kept (for tests and the benchmark).
func (m *Manager) Held() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.held)
}

// holder is a held lease from l's server with l's address or client identifier, if any (l
// itself is not held). A server keeps one binding per client identifier: a RELEASE in its
// name would free the holder's address, whichever address it names.
func (m *Manager) holder(l *Lease) *Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range m.held {
		o := h.get()
		same := o.IP().Equal(l.IP()) || bytes.Equal(o.Identity.ClientID, l.Identity.ClientID)
		if same && o.ack.ServerIdentifier().Equal(l.ack.ServerIdentifier()) {
			return &o
		}
	}
	return nil
}

func (m *Manager) lookup(k string) *held {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held[k]
}

func (l *Lease) attrs(more ...any) []any {
	return append([]any{"pod", l.Pod.String(), "network", l.Network, "ifname", l.IfName,
		"containerID", l.ContainerID, "ip", l.IP().String()}, more...)
}
