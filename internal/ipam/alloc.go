package ipam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/ipam/blocks"
	"github.com/multinet/multinet/internal/ipam/pool"
)

// maxClaimSteps bounds the blocks one claim looks at: a pool of /16 in /26 blocks has 1024.
const maxClaimSteps = 1 << 16

// casAttempts bounds the compare-and-swap retries of one write to a block.
const casAttempts = 16

var (
	// ErrExhausted: no block of the pool has a free address for the range.
	ErrExhausted = errors.New("no IP addresses available")
	// ErrTaken: a requested address is in use by another pod.
	ErrTaken = errors.New("requested address is in use")
	// errBlockFull: the block has no free address for the range (try the next one).
	errBlockFull = errors.New("block full")
	// errNotShared: the block is not shared (ask its owner first).
	errNotShared = errors.New("block not shared")
)

// block is a block this node owns or holds records in.
type block struct {
	name     string
	pool     string
	label    string // pool.PoolLabel(pool): unreadable records are known by it
	prefix   netip.Prefix
	obj      *blocks.IPBlock // newest version known; nil until read
	used     int             // the node's records in it
	sharing  bool            // a share was asked for: no more local allocations
	sharedAt time.Time       // when this node shared it (taken back only ShareWait later)
	dirty    bool            // the object does not reflect the node's records yet
}

// blockFor returns the block of that name, known from now on; the caller holds mu.
func (m *Manager) blockFor(name, poolID, cidr string) *block {
	b := m.blocks[name]
	if b == nil {
		p, _ := netip.ParsePrefix(cidr)
		b = &block{name: name, pool: poolID, label: pool.PoolLabel(poolID), prefix: p}
		m.blocks[name] = b
	}
	return b
}

// local reports whether the node may allocate in b without asking the API server.
func (m *Manager) local(b *block) bool {
	return b.obj != nil && b.obj.Spec.Node == m.node && !b.obj.Spec.Shared && !b.sharing
}

// taken reports whether a is in use as far as this node knows; the caller holds mu.
func (m *Manager) taken(b *block, a netip.Addr) bool {
	k := recKey(b.pool, a)
	if m.ledger.recs[k] != nil || m.pending[k] || m.unreadable(b, a) {
		return true
	}
	if b.obj != nil {
		if e, ok := b.obj.Spec.Allocations[a.String()]; ok && e.Node != m.node {
			return true
		}
	}
	return false
}

// unreadable reports whether a of b's pool has a record file that does not read; the caller
// holds mu.
func (m *Manager) unreadable(b *block, a netip.Addr) bool {
	if len(m.unread) == 0 {
		return false
	}
	_, bad := m.unread[b.label+"|"+a.String()]
	return bad
}

// checkBlockSize refuses a range whose block size differs from the blocks its pool already
// has: blocks of two sizes would overlap and hand out one address twice.
func (m *Manager) checkBlockSize(r pool.Range) error {
	other := func(name string, p netip.Prefix) error {
		return fmt.Errorf("%w: pool %q has blocks of /%d (IPBlock %s); this network asks for /%d: give every network of the pool the same block_size/block_size_v6",
			errBadConf, r.Pool, p.Bits(), name, r.BlockBits)
	}
	// A pool's blocks all have one size (this check runs before each claim), so the node's own
	// blocks answer; only a node without any looks at the pool's, once per ADD until it claims.
	m.mu.Lock()
	for _, b := range m.blocks {
		if b.pool == r.Pool && b.prefix.IsValid() {
			m.mu.Unlock()
			if b.prefix.Bits() != r.BlockBits {
				return other(b.name, b.prefix)
			}
			return nil
		}
	}
	m.mu.Unlock()
	for _, b := range blocks.ListByPool(m.inf, r.Pool) {
		if p, err := b.Prefix(); err == nil && p.Bits() != r.BlockBits {
			return other(b.Name, p)
		}
	}
	return nil
}

// takeAny takes the lowest free address of r: in a block the node owns, else in a block it
// claims, else borrowed from another node's block.
func (m *Manager) takeAny(ctx context.Context, req *request, r pool.Range, hold time.Duration) (*record, error) {
	if rec, err := m.takeLocal(req, r, netip.Addr{}, hold); rec != nil || err != nil {
		if rec != nil {
			m.claimAhead(req, r)
		}
		return rec, err
	}
	// The slow path, one ADD of the pool at a time on this node: a burst of ADDs claims one
	// block, not one each, and does not race itself for the same borrowed address.
	defer m.locks.Lock("claim|" + r.Pool)()
	for {
		if rec, err := m.takeLocal(req, r, netip.Addr{}, hold); rec != nil || err != nil {
			return rec, err
		}
		claimed, err := m.claim(ctx, req, r, netip.Prefix{})
		if err != nil {
			return nil, err
		}
		if !claimed {
			return m.borrow(ctx, req, r, hold)
		}
	}
}

// claimAhead claims the pool's next block in the background when the node's own blocks are
// nearly full (fewer free addresses than a quarter block), so that ADDs seldom wait for a
// claim; only while at least half of the range's blocks are unclaimed, so that a tight pool's
// blocks go to the nodes that have none. After an attempt it waits ShareWait before the next.
func (m *Manager) claimAhead(req *request, r pool.Range) {
	size := 1 << (r.Subnet.Addr().BitLen() - r.BlockBits)
	m.mu.Lock()
	free := 0
	for _, b := range m.sortedBlocks(r.Pool) {
		if m.local(b) && b.prefix.Overlaps(r.Subnet) {
			free += r.UsableIn(b.prefix) - b.used
		}
	}
	if free >= size/4 || time.Now().Before(m.ahead[r.Pool]) {
		m.mu.Unlock()
		return
	}
	m.ahead[r.Pool] = time.Now().Add(m.set.ShareWait)
	m.mu.Unlock()
	if !m.mostlyUnclaimed(r) {
		return
	}
	go func() {
		defer m.locks.Lock("claim|" + r.Pool)()
		if _, err := m.claim(m.ctx, req, r, netip.Prefix{}); err != nil {
			m.deps.Log.Warn("ipam block not claimed ahead", "pool", r.Pool, "err", err)
		}
	}()
}

// mostlyUnclaimed reports whether at least half of r's blocks have no IPBlock yet (it looks
// at 2048 blocks at most).
func (m *Manager) mostlyUnclaimed(r pool.Range) bool {
	total, claimed := 0, 0
	for p, ok := r.FirstBlock(), true; ok && total < 2048; p, ok = r.NextBlock(p) {
		total++
		if _, exists, _ := m.inf.GetIndexer().GetByKey(pool.BlockName(r.Pool, p)); exists {
			claimed++
		}
	}
	return claimed*2 <= total
}

// takeLocal allocates want (or the lowest free address if want is zero) in a block the node
// owns and allocates in alone; nil, nil when there is none with room.
func (m *Manager) takeLocal(req *request, r pool.Range, want netip.Addr, hold time.Duration) (*record, error) {
	m.mu.Lock()
	var b *block
	var a netip.Addr
	for _, c := range m.sortedBlocks(r.Pool) {
		if !m.local(c) || !c.prefix.Overlaps(r.Subnet) {
			continue
		}
		taken := func(x netip.Addr) bool { return m.taken(c, x) }
		if want.IsValid() {
			if c.prefix.Contains(want) && !taken(want) {
				b, a = c, want
			}
		} else if x, ok := r.FreeIn(c.prefix, taken); ok {
			b, a = c, x
		}
		if b != nil {
			break
		}
	}
	if b == nil {
		m.mu.Unlock()
		return nil, nil
	}
	// The record is known before it is durable: a flush that shares the block meanwhile
	// writes it into the object, so no borrower can take the address.
	rec := newRecord(req, r, b, a, hold)
	m.addRecord(rec)
	m.mu.Unlock()
	unlock := m.addrLock(rec.Pool, rec.Addr)
	defer unlock()
	if err := m.store.save(rec); err != nil {
		m.mu.Lock()
		m.dropRecord(rec)
		m.mu.Unlock()
		return nil, err
	}
	m.deps.Obs.IPAMAllocated(false)
	return rec, nil
}

func newRecord(req *request, r pool.Range, b *block, a netip.Addr, hold time.Duration) *record {
	return &record{Pool: r.Pool, Block: b.name, CIDR: b.prefix.String(), Addr: a, Bits: r.Subnet.Bits(),
		Network: req.network, Pod: req.pod.Namespace + "/" + req.pod.Name, UID: req.pod.UID,
		ContainerID: req.ContainerID, IfName: req.IfName, Hold: hold, Created: time.Now().UTC()}
}

// sortedBlocks are the known blocks of a pool in address order; the caller holds mu.
func (m *Manager) sortedBlocks(poolID string) []*block {
	var out []*block
	for _, b := range m.blocks {
		if b.pool == poolID && b.prefix.IsValid() {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(x, y *block) int { return x.prefix.Addr().Compare(y.prefix.Addr()) })
	return out
}

// claim creates the IPBlock of a free block of r (of the block `only`, when set) with this
// node's affinity. It reports false when every block of r exists.
func (m *Manager) claim(ctx context.Context, req *request, r pool.Range, only netip.Prefix) (bool, error) {
	try := func(p netip.Prefix) (bool, error) {
		name := pool.BlockName(r.Pool, p)
		if _, exists, _ := m.inf.GetIndexer().GetByKey(name); exists || r.UsableIn(p) == 0 {
			return false, nil
		}
		obj := &blocks.IPBlock{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{blocks.PoolLabel: pool.PoolLabel(r.Pool), blocks.NodeLabel: m.node}},
			Spec: blocks.IPBlockSpec{Pool: r.Pool, Network: networkLabel(req), CIDR: p.String(), Node: m.node}}
		obj.Recount(r.UsableIn(p))
		created, err := m.deps.API.Create(ctx, obj)
		switch {
		case apierrors.IsAlreadyExists(err):
			return false, nil
		case err != nil: // the API server is down or refuses: a later ADD may get through
			return false, fmt.Errorf("claim block %s of pool %q: %w: %w", p, r.Pool, err, errTryAgain)
		}
		m.mu.Lock()
		m.blockFor(name, r.Pool, p.String()).obj = created
		m.mu.Unlock()
		m.deps.Obs.IPAMBlockClaimed()
		m.deps.Log.Info("ipam block claimed", "block", name, "cidr", p, "pool", r.Pool)
		return true, nil
	}
	if only.IsValid() {
		return try(only)
	}
	start := r.BlockAt(nodeSeed(m.node))
	steps := 0
	for p, ok := start, true; ok && steps < maxClaimSteps; p, ok = r.NextBlock(p) {
		steps++
		if done, err := try(p); done || err != nil {
			return done, err
		}
	}
	for p, ok := r.FirstBlock(), true; ok && steps < maxClaimSteps && p.Addr().Less(start.Addr()); p, ok = r.NextBlock(p) {
		steps++
		if done, err := try(p); done || err != nil {
			return done, err
		}
	}
	return false, nil
}

// networkLabel names the block's network for people: network_name, else the CNI network.
func networkLabel(req *request) string {
	if req.conf.NetworkName != "" {
		return req.conf.NetworkName
	}
	return req.conf.Network
}

func nodeSeed(node string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(node))
	return h.Sum64()
}

// borrow allocates in another node's block with a compare-and-swap, asking the owner to share
// the block first. Blocks already shared come first, then those with most room.
func (m *Manager) borrow(ctx context.Context, req *request, r pool.Range, hold time.Duration) (*record, error) {
	cands := m.candidates(r)
	for _, c := range cands {
		rec, err := m.casTake(ctx, req, r, c.Name, netip.Addr{}, hold)
		if errors.Is(err, errNotShared) && c.Spec.Node == m.node { // this node took its block back
			if rec, err = m.takeLocal(req, r, netip.Addr{}, hold); rec != nil || err != nil {
				return rec, err
			}
			continue
		}
		if errors.Is(err, errNotShared) {
			if err = m.askShare(ctx, c.Name); err != nil {
				m.deps.Log.Info("block not shared", "block", c.Name, "owner", c.Spec.Node, "err", err)
				continue
			}
			rec, err = m.casTake(ctx, req, r, c.Name, netip.Addr{}, hold)
		}
		switch {
		case err == nil:
			m.deps.Obs.IPAMAllocated(true)
			return rec, nil
		case errors.Is(err, errBlockFull) || errors.Is(err, errNotShared):
			continue
		default:
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w in range %s (pool %q): every block is claimed and none had a free address (%d looked at): %w",
		ErrExhausted, r, r.Pool, len(cands), errTryAgain)
}

// candidates are the pool's blocks overlapping r that have a free address for it, as the
// informer last saw them: shared ones first, then those with most room.
func (m *Manager) candidates(r pool.Range) []*blocks.IPBlock {
	var out []*blocks.IPBlock
	free := map[string]int{}
	for _, b := range blocks.ListByPool(m.inf, r.Pool) {
		p, err := b.Prefix()
		if err != nil || !p.Overlaps(r.Subnet) {
			continue
		}
		used := func(x netip.Addr) bool { _, in := b.Spec.Allocations[x.String()]; return in }
		if _, ok := r.FreeIn(p, used); ok {
			free[b.Name] = r.UsableIn(p) - len(b.Spec.Allocations)
			out = append(out, b)
		}
	}
	// The node's own shared blocks, then other shared blocks in an order of the node's own
	// (so that borrowers spread out rather than race for one address), then the blocks with
	// most room, whose owners would be asked to share.
	rank := func(b *blocks.IPBlock) int {
		switch {
		case shared(b) && b.Spec.Node == m.node:
			return 0
		case shared(b):
			return 1
		}
		return 2
	}
	slices.SortStableFunc(out, func(x, y *blocks.IPBlock) int {
		if rx, ry := rank(x), rank(y); rx != ry {
			return rx - ry
		}
		if rank(x) == 1 {
			return cmp.Compare(nodeSeed(m.node+"|"+x.Name), nodeSeed(m.node+"|"+y.Name))
		}
		return free[y.Name] - free[x.Name]
	})
	return out
}

// shared reports whether every allocation in b is a compare-and-swap of its object.
func shared(b *blocks.IPBlock) bool { return b.Spec.Shared || b.Spec.Node == "" }

// casTake allocates want (or the lowest free address) of r in the shared block `name` with a
// compare-and-swap of its object, then records it.
func (m *Manager) casTake(ctx context.Context, req *request, r pool.Range, name string, want netip.Addr, hold time.Duration) (*record, error) {
	obj, err := m.cached(ctx, name)
	for attempt := 0; err == nil && attempt < casAttempts; attempt++ {
		if !shared(obj) {
			return nil, errNotShared
		}
		var a netip.Addr
		var b *block
		if a, b, err = m.pick(obj, r, want); err != nil {
			return nil, err
		}
		next := obj.DeepCopy()
		if next.Spec.Allocations == nil {
			next.Spec.Allocations = map[string]blocks.Allocation{}
		}
		rec := newRecord(req, r, b, a, hold)
		next.Spec.Allocations[a.String()] = allocationOf(rec, m.node)
		next.Recount(r.UsableIn(b.prefix) - len(next.Spec.Allocations))
		updated, uerr := m.deps.API.Update(ctx, next)
		if uerr == nil {
			return m.recordTaken(b, rec, updated)
		}
		m.unpend(r.Pool, a)
		if !apierrors.IsConflict(uerr) {
			return nil, fmt.Errorf("allocate %s in block %s: %w", a, name, uerr)
		}
		obj, err = m.deps.API.Get(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read block %s: %w", name, err)
	}
	return nil, fmt.Errorf("allocate in block %s: %d conflicting writes in a row: %w", name, casAttempts, errTryAgain)
}

// pick chooses the address in a shared block's object and marks it pending.
func (m *Manager) pick(obj *blocks.IPBlock, r pool.Range, want netip.Addr) (netip.Addr, *block, error) {
	p, err := obj.Prefix()
	if err != nil {
		return netip.Addr{}, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.blockFor(obj.Name, r.Pool, p.String())
	taken := func(x netip.Addr) bool {
		_, used := obj.Spec.Allocations[x.String()]
		return used || m.taken(b, x)
	}
	a := want
	switch {
	case want.IsValid() && taken(want):
		return netip.Addr{}, nil, fmt.Errorf("%w: %s is held by %s", ErrTaken, want, holder(obj, want))
	case !want.IsValid():
		var ok bool
		if a, ok = r.FreeIn(p, taken); !ok {
			return netip.Addr{}, nil, errBlockFull
		}
	}
	m.pending[recKey(r.Pool, a)] = true
	return a, b, nil
}

func (m *Manager) unpend(poolID string, a netip.Addr) {
	m.mu.Lock()
	delete(m.pending, recKey(poolID, a))
	m.mu.Unlock()
}

// recordTaken saves the record of an address the block's object now gives this node.
func (m *Manager) recordTaken(b *block, rec *record, updated *blocks.IPBlock) (*record, error) {
	defer m.addrLock(rec.Pool, rec.Addr)()
	err := m.store.save(rec)
	m.mu.Lock()
	delete(m.pending, recKey(rec.Pool, rec.Addr))
	b.obj = updated
	if err == nil {
		m.addRecord(rec)
	} else {
		b.dirty = true // the flusher takes the entry out again
	}
	m.mu.Unlock()
	return rec, err
}

func allocationOf(r *record, node string) blocks.Allocation {
	a := blocks.Allocation{Node: node, Pod: r.Pod, UID: r.UID, ContainerID: r.ContainerID, IfName: r.IfName}
	if r.held() {
		t := metav1.NewTime(r.HeldUntil)
		a.HeldUntil = &t
	}
	return a
}

func holder(obj *blocks.IPBlock, a netip.Addr) string {
	if e, ok := obj.Spec.Allocations[a.String()]; ok {
		return fmt.Sprintf("pod %s (node %s)", e.Pod, e.Node)
	}
	return "another pod of this node"
}

// cached is the informer's copy of a block, else the API server's.
// cached is the newest copy of a block this node has: the informer's, or the one its own last
// write returned (newer until the watch delivers it: a compare-and-swap on it saves a
// conflict and a read); else the API server's.
func (m *Manager) cached(ctx context.Context, name string) (*blocks.IPBlock, error) {
	var newest *blocks.IPBlock
	if o, exists, _ := m.inf.GetIndexer().GetByKey(name); exists {
		newest, _ = o.(*blocks.IPBlock)
	}
	m.mu.Lock()
	if b := m.blocks[name]; b != nil && b.obj != nil && newer(b.obj, newest) {
		newest = b.obj
	}
	m.mu.Unlock()
	if newest != nil {
		return newest, nil
	}
	return m.deps.API.Get(ctx, name)
}

// newer reports whether x is a later version of the object than y (resourceVersions are
// etcd revisions; one that is not a number is never newer).
func newer(x, y *blocks.IPBlock) bool {
	if y == nil {
		return true
	}
	xv, err := strconv.ParseUint(x.ResourceVersion, 10, 64)
	if err != nil || x.UID != y.UID {
		return false
	}
	yv, err := strconv.ParseUint(y.ResourceVersion, 10, 64)
	return err != nil || xv > yv
}

// askShare asks the owner of block `name` to share it and waits until it has.
func (m *Manager) askShare(ctx context.Context, name string) error {
	for attempt := 0; ; attempt++ {
		obj, err := m.deps.API.Get(ctx, name)
		if err != nil {
			return fmt.Errorf("read block %s: %w", name, err)
		}
		if shared(obj) {
			return nil
		}
		if slices.Contains(obj.Spec.ShareWanted, m.node) {
			break
		}
		next := obj.DeepCopy()
		next.Spec.ShareWanted = append(next.Spec.ShareWanted, m.node)
		_, err = m.deps.API.Update(ctx, next)
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) || attempt >= casAttempts {
			return fmt.Errorf("ask node %s to share block %s: %w", obj.Spec.Node, name, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, m.set.ShareWait)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if o, err := m.cached(ctx, name); err == nil && shared(o) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("its owner did not share it within %s", m.set.ShareWait)
		case <-tick.C:
		}
	}
}

// takeAddress allocates the requested address a of r: in a block the node owns, else in its
// block once claimed, else by compare-and-swap in another node's block.
func (m *Manager) takeAddress(ctx context.Context, req *request, r pool.Range, a netip.Addr, hold time.Duration) (*record, error) {
	if !r.Usable(a) {
		return nil, fmt.Errorf("%w: requested ip %s may not be handed out (network or broadcast address, gateway, excluded, or outside range_start..range_end)", errBadConf, a)
	}
	p := pool.BlockOf(a, r.BlockBits)
	name := pool.BlockName(r.Pool, p)
	for attempt := 0; attempt < 2; attempt++ {
		if rec, err := m.takeLocal(req, r, a, hold); rec != nil || err != nil {
			return rec, err
		}
		m.mu.Lock()
		b := m.blocks[name]
		mine := b != nil && m.local(b)
		m.mu.Unlock()
		if mine { // the node's own block, and the address is in use
			return nil, fmt.Errorf("%w: %s is held by %s", ErrTaken, a, m.localHolder(r.Pool, a))
		}
		if claimed, err := m.claim(ctx, req, r, p); err != nil || claimed {
			if err != nil {
				return nil, err
			}
			continue
		}
		break
	}
	rec, err := m.casTake(ctx, req, r, name, a, hold)
	if errors.Is(err, errNotShared) {
		if err = m.askShare(ctx, name); err != nil {
			return nil, fmt.Errorf("requested ip %s is in block %s: %w", a, name, err)
		}
		rec, err = m.casTake(ctx, req, r, name, a, hold)
	}
	return rec, err
}

func (m *Manager) localHolder(poolID string, a netip.Addr) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.ledger.get(poolID, a); r != nil {
		if r.held() {
			return fmt.Sprintf("pod %s (held for it until %s)", r.Pod, r.HeldUntil.Format(time.RFC3339))
		}
		return "pod " + r.Pod
	}
	if _, bad := m.unread[pool.PoolLabel(poolID)+"|"+a.String()]; bad {
		return "a record of this node that does not read (" + m.unread[pool.PoolLabel(poolID)+"|"+a.String()].path + ")"
	}
	return "an allocation in progress"
}

// takeHold gives a StatefulSet pod the address held for it in r's pool by this node, if any
// (only want, when set; of several holds the newest). The hold's record never went away, so
// the block's object lists the address as this node's all along, shared block or not: no
// other node can have taken it. A hold that expires meanwhile is not taken.
func (m *Manager) takeHold(_ context.Context, req *request, r pool.Range, want netip.Addr, hold time.Duration) (*record, error) {
	pod := req.pod.Namespace + "/" + req.pod.Name
	m.mu.Lock()
	var h *record
	for _, x := range m.ledger.held(r.Pool, pod, req.IfName) {
		if r.Contains(x.Addr) && (!want.IsValid() || x.Addr == want) {
			h = x
			break
		}
	}
	m.mu.Unlock()
	if h == nil {
		return nil, nil
	}
	defer m.addrLock(h.Pool, h.Addr)()
	m.mu.Lock()
	live := m.ledger.has(h)
	m.mu.Unlock()
	if !live {
		return nil, nil
	}
	rec := *h
	rec.ContainerID, rec.UID, rec.HeldUntil, rec.Hold = req.ContainerID, req.pod.UID, time.Time{}, hold
	if err := m.store.save(&rec); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.replaceRecord(h, &rec)
	m.mu.Unlock()
	m.deps.Log.Info("held address given back to its pod", "pod", pod, "network", req.network, "ip", rec.Addr)
	m.deps.Obs.IPAMAllocated(false)
	return &rec, nil
}
