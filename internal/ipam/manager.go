package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/ipam/blocks"
	"github.com/multinet/multinet/internal/ipam/pool"
	"github.com/multinet/multinet/internal/keylock"
	"github.com/multinet/multinet/internal/podinfo"
)

// Settings tune the manager; zero values take the defaults.
type Settings struct {
	FlushInterval   time.Duration // how often changed blocks are written back (default 2s)
	ShareWait       time.Duration // how long a borrower waits for an owner to share a block (default 10s)
	Grace           time.Duration // a pod gone this long has its addresses reclaimed (default 5m)
	ReclaimInterval time.Duration // how often the reconciler runs (default 1m)
	NoSync          bool          // records are not fsynced: they survive a daemon crash, not a power loss (syncCheckpoints: false)
}

func (s *Settings) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&s.FlushInterval, 2*time.Second)
	def(&s.ShareWait, 10*time.Second)
	def(&s.Grace, 5*time.Minute)
	def(&s.ReclaimInterval, time.Minute)
}

// Pods finds a pod (podinfo.Source): the StatefulSet test and the reconciler's "is it gone".
type Pods interface {
	Pod(ctx context.Context, namespace, name, uid string) (*corev1.Pod, error)
}

// Nodes answers the reconciler's questions about other nodes.
type Nodes interface {
	NodeExists(ctx context.Context, name string) (bool, error)
	PodsOnNode(ctx context.Context, name string) (bool, error)
}

// Observer counts what the manager does: multinetd's Prometheus metrics.
type Observer interface {
	IPAMAllocated(borrowed bool)
	IPAMReleased()
	IPAMBlockClaimed()
	IPAMReclaimed(kind string) // "pod", "hold" or "node"
}

type noObserver struct{}

func (noObserver) IPAMAllocated(bool)   {}
func (noObserver) IPAMReleased()        {}
func (noObserver) IPAMBlockClaimed()    {}
func (noObserver) IPAMReclaimed(string) {}

// Deps are the manager's edges.
type Deps struct {
	API   blocks.Client
	Pods  Pods  // nil: no StatefulSet holds, no pod-gone reclaim
	Nodes Nodes // nil: no reclaim of deleted nodes
	Obs   Observer
	Log   *slog.Logger
}

// Manager allocates multinet-ipam addresses for one node.
type Manager struct {
	node  string
	set   Settings
	deps  Deps
	store store
	locks keylock.Locks // one ADD/DEL per interface at a time

	startOnce sync.Once
	inf       cache.SharedIndexInformer
	infReady  chan struct{}
	kick      chan struct{}
	flushMu   sync.Mutex // one Flush at a time
	ctx       context.Context

	mu      sync.Mutex
	ledger  ledger                // the node's records and holds
	unread  map[string]unreadable // addresses of record files that do not read, by pool label and address: never handed out
	blocks  map[string]*block     // blocks this node owns or holds records in, by name
	pending map[string]bool       // recKeys being allocated
	missing map[string]time.Time  // pods seen gone by the reconciler, since
	ahead   map[string]time.Time  // pools claimed ahead for, or found full, until then no more

	// beforeReclaim, when set (tests), runs between the reconciler's (or GC's) look at the
	// records and its release of r: where a concurrent DEL and ADD may change them.
	beforeReclaim func(r *record)
}

// reclaiming calls the beforeReclaim hook.
func (m *Manager) reclaiming(r *record) {
	if m.beforeReclaim != nil {
		m.beforeReclaim(r)
	}
}

// New opens the node's records in dir. Call Start before serving.
func New(node, dir string, set Settings, deps Deps) (*Manager, error) {
	set.defaults()
	if deps.Obs == nil {
		deps.Obs = noObserver{}
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	s, err := openStore(dir, !set.NoSync)
	if err != nil {
		return nil, err
	}
	return &Manager{node: node, set: set, deps: deps, store: s, infReady: make(chan struct{}), kick: make(chan struct{}, 1),
		ctx: context.Background(), ledger: newLedger(), unread: map[string]unreadable{},
		blocks: map[string]*block{}, pending: map[string]bool{}, missing: map[string]time.Time{},
		ahead: map[string]time.Time{}}, nil
}

// Start reloads the node's records and runs the flusher and the reconciler until ctx ends.
// The block informer starts now if the node has records or blocks (it answers share requests
// and removes a crash's stray entries), else with the first request: a node whose pods never
// use multinet-ipam never watches blocks.
func (m *Manager) Start(ctx context.Context) {
	m.ctx = ctx
	recs, bad, errs := m.store.all()
	for _, err := range errs {
		m.deps.Log.Error("ipam record not reloaded", "err", err)
	}
	m.mu.Lock()
	for _, r := range recs {
		m.addRecord(r)
	}
	for _, u := range bad {
		m.unread[u.key()] = u
		m.deps.Log.Error("ipam record unreadable: its address stays reserved until the file is removed and multinetd restarts",
			"file", u.path, "ip", u.addr, "err", u.err)
	}
	m.mu.Unlock()
	if len(recs) > 0 {
		m.deps.Log.Info("ipam records reloaded", "count", len(recs), "dir", m.store.dir)
	}
	if len(recs) > 0 || len(bad) > 0 {
		m.startInformer()
	} else {
		go m.startIfBlocks(ctx)
	}
	go m.runFlusher(ctx)
	go m.runReconciler(ctx)
}

// addRecord indexes r unless its address has a record; the caller holds mu.
func (m *Manager) addRecord(r *record) bool {
	if !m.ledger.add(r) {
		return false
	}
	b := m.blockFor(r.Block, r.Pool, r.CIDR)
	b.dirty = true
	b.used++
	return true
}

// dropRecord forgets r if it is still the record of its address; the caller holds mu.
func (m *Manager) dropRecord(r *record) bool {
	if !m.ledger.remove(r) {
		return false
	}
	if b := m.blocks[r.Block]; b != nil {
		b.dirty = true
		b.used--
	}
	return true
}

// replaceRecord puts r in old's place if old is still the record of its address; the caller
// holds mu.
func (m *Manager) replaceRecord(old, r *record) bool {
	if !m.ledger.replace(old, r) {
		return false
	}
	if b := m.blocks[r.Block]; b != nil {
		b.dirty = true
	}
	return true
}

// addrLock serialises the changes of the record of one address and of its file: whoever
// holds it and finds the record it looked at still in the ledger may change both.
func (m *Manager) addrLock(poolID string, a netip.Addr) (unlock func()) {
	return m.locks.Lock("addr|" + recKey(poolID, a))
}

// Add allocates one address per range of the network (or returns those the interface has).
func (m *Manager) Add(ctx context.Context, in *cniapi.Request) (json.RawMessage, error) {
	req, err := decode(in)
	if err != nil {
		return nil, cniError(types.ErrInvalidNetworkConfig, err)
	}
	if in.ContainerID == "" || in.IfName == "" {
		return nil, cniError(types.ErrInvalidEnvironmentVariables, errors.New("multinet-ipam needs CNI_CONTAINERID and CNI_IFNAME"))
	}
	defer m.locks.Lock(owner(in.ContainerID, in.IfName))()
	recs := m.current(in.ContainerID, in.IfName)
	if len(recs) > 0 && !matches(req, recs) {
		if err := m.replug(req, recs); err != nil {
			return nil, fmt.Errorf("pod %s, network %q, interface %s: %w", req.pod, req.network, in.IfName, err)
		}
		recs = nil
	}
	if len(recs) == 0 {
		if recs, err = m.allocate(ctx, req); err != nil {
			return nil, fmt.Errorf("pod %s, network %q, interface %s: %w", req.pod, req.network, in.IfName, err)
		}
	}
	return cniapi.Render(result(req, recs), req.version)
}

func (m *Manager) current(containerID, ifname string) []*record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ledger.owned(containerID, ifname)
}

// matches reports whether the interface's records are the request's: its network, one in
// each of its ranges.
func matches(req *request, recs []*record) bool {
	if len(recs) != len(req.conf.Ranges) {
		return false
	}
	for _, r := range recs {
		in := slices.ContainsFunc(req.conf.Ranges, func(x pool.Range) bool { return x.Pool == r.Pool && x.Contains(r.Addr) })
		if r.Network != req.network || !in {
			return false
		}
	}
	return true
}

// replug releases, as its DEL would have, the records an interface name still has of another
// network (or of another configuration of the network): the runtime plugs the name again,
// and the old addresses are not the new attachment's.
func (m *Manager) replug(req *request, recs []*record) error {
	var errs []error
	for _, r := range recs {
		m.deps.Log.Info("ipam: interface plugged again on another network: its old address released",
			"pod", r.Pod, "ifname", r.IfName, "containerID", r.ContainerID, "old network", r.Network, "ip", r.Addr,
			"network", req.network)
		_, err := m.release(r, true)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// allocate takes one address in each range; on a failure it gives back what it took.
func (m *Manager) allocate(ctx context.Context, req *request) (recs []*record, err error) {
	if err := m.waitInformer(ctx); err != nil {
		return nil, err
	}
	hold, err := m.holdFor(ctx, req)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			for _, r := range recs {
				if _, rerr := m.release(r, false); rerr != nil {
					m.deps.Log.Error("address of a failed ADD not freed; the reconciler frees it once the pod is gone",
						"pod", r.Pod, "ip", r.Addr, "err", rerr)
				}
			}
			recs = nil
		}
	}()
	for _, r := range req.conf.Ranges {
		rec, err := m.allocateIn(ctx, req, r, hold)
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// allocateIn takes the requested address of range r, else the pod's held one, else any. A
// StatefulSet pod's address is held for hold after its DEL.
func (m *Manager) allocateIn(ctx context.Context, req *request, r pool.Range, hold time.Duration) (*record, error) {
	if err := m.checkBlockSize(r); err != nil {
		return nil, err
	}
	want := netip.Addr{}
	if i := slices.IndexFunc(req.requested, r.Contains); i >= 0 {
		want = req.requested[i]
	}
	if hold > 0 { // the pod's own held address, also when it asks for it by "ips"
		if rec, err := m.takeHold(ctx, req, r, want, hold); rec != nil || err != nil {
			return rec, err
		}
	}
	if want.IsValid() {
		return m.takeAddress(ctx, req, r, want, hold)
	}
	return m.takeAny(ctx, req, r, hold)
}

// holdFor is how long the pod's addresses are held after its DEL: sticky_hold for a
// StatefulSet's pod, else 0. A pod that cannot be read fails the ADD (code 11): an address
// handed out unheld would go to another pod at the StatefulSet pod's restart.
func (m *Manager) holdFor(ctx context.Context, req *request) (time.Duration, error) {
	p := req.pod
	if m.deps.Pods == nil || p.Name == "" || req.conf.StickyHold <= 0 {
		return 0, nil
	}
	pod, err := m.deps.Pods.Pod(ctx, p.Namespace, p.Name, p.UID)
	switch {
	case errors.Is(err, podinfo.ErrNotFound), errors.Is(err, podinfo.ErrStaleSandbox):
		return 0, nil // no such pod (any more): nobody to hold the address for
	case err != nil:
		return 0, fmt.Errorf("is the pod a StatefulSet's (whose addresses are held after DEL)? %w: %w", err, errTryAgain)
	}
	if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == "StatefulSet" {
		return req.conf.StickyHold, nil
	}
	return 0, nil
}

// Del releases the interface's addresses: a StatefulSet pod's become holds, the others free.
// It needs no API server; the blocks learn it from the flusher. DEL of an unknown interface
// succeeds.
func (m *Manager) Del(_ context.Context, in *cniapi.Request) error {
	if in.ContainerID == "" || in.IfName == "" {
		return cniError(types.ErrInvalidEnvironmentVariables, errors.New("multinet-ipam needs CNI_CONTAINERID and CNI_IFNAME"))
	}
	defer m.locks.Lock(owner(in.ContainerID, in.IfName))()
	var errs []error
	for _, r := range m.current(in.ContainerID, in.IfName) {
		_, err := m.release(r, true)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// release frees r, or, when hold is set, turns a StatefulSet pod's record into a hold, and
// reports whether it did. It acts only if r is still the record of its address: a release of
// a record already released (a DEL again, or a reconciler that looked before a DEL and an ADD
// that took the address again) does nothing.
func (m *Manager) release(r *record, hold bool) (bool, error) {
	defer m.addrLock(r.Pool, r.Addr)()
	m.mu.Lock()
	live := m.ledger.has(r)
	m.mu.Unlock()
	if !live {
		return false, nil
	}
	// Under the address's lock nobody else changes its record: the file and the ledger
	// change together.
	if hold && r.Hold > 0 {
		h := *r
		h.ContainerID, h.HeldUntil = "", time.Now().Add(r.Hold).UTC()
		if err := m.store.save(&h); err != nil {
			return false, err
		}
		m.mu.Lock()
		m.replaceRecord(r, &h)
		m.mu.Unlock()
		m.deps.Log.Info("address held for the pod", "pod", r.Pod, "network", r.Network, "ip", r.Addr, "until", h.HeldUntil)
		return true, nil
	}
	if err := m.store.remove(r); err != nil {
		return false, err
	}
	m.mu.Lock()
	m.dropRecord(r)
	m.mu.Unlock()
	m.deps.Obs.IPAMReleased()
	return true, nil
}

// Check fails when the interface has no address.
func (m *Manager) Check(_ context.Context, in *cniapi.Request) error {
	if len(m.current(in.ContainerID, in.IfName)) == 0 {
		return cniError(types.ErrInternal, fmt.Errorf("multinet-ipam holds no address for container %s interface %s", in.ContainerID, in.IfName))
	}
	return nil
}

// GC releases the network's addresses of every interface not among the valid attachments.
func (m *Manager) GC(_ context.Context, in *cniapi.Request) error {
	req, err := decode(in)
	if err != nil {
		return cniError(types.ErrInvalidNetworkConfig, err)
	}
	valid := map[string]bool{}
	for _, a := range req.valid {
		valid[owner(a.ContainerID, a.IfName)] = true
	}
	m.mu.Lock()
	var stale []*record
	for _, r := range m.ledger.inUse() {
		if !valid[r.owner()] && r.Network == req.network {
			stale = append(stale, r)
		}
	}
	m.mu.Unlock()
	var errs []error
	for _, r := range stale {
		m.reclaiming(r)
		_, err := m.release(r, false)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Status is ready whenever the daemon answers: ADD waits for the blocks itself.
func (m *Manager) Status(context.Context, *cniapi.Request) error { return nil }

// result is the CNI result of the records.
func result(req *request, recs []*record) *types100.Result {
	res := &types100.Result{CNIVersion: types100.ImplementedSpecVersion, Routes: req.conf.Routes, DNS: req.conf.DNS}
	for _, rec := range recs {
		ip := &types100.IPConfig{Address: *netipToIPNet(rec.prefix())}
		if r, ok := req.conf.RangeFor(rec.Addr); ok && r.Gateway.IsValid() {
			ip.Gateway = r.Gateway.AsSlice()
		}
		res.IPs = append(res.IPs, ip)
	}
	return res
}
