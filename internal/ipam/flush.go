package ipam

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/multinet/multinet/internal/ipam/blocks"
)

// runFlusher writes changed blocks back every FlushInterval, and at once when an owner must
// share a block; once more, briefly, when ctx ends.
func (m *Manager) runFlusher(ctx context.Context) {
	tick := time.NewTicker(m.set.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if m.synced() {
				last, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				m.Flush(last)
				cancel()
			}
			return
		case <-tick.C:
		case <-m.kick:
		}
		if m.synced() {
			m.Flush(ctx)
		}
	}
}

func (m *Manager) kickFlusher() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Flush writes back every block whose object does not reflect the node's records. One flush
// runs at a time: a Flush returns once what was recorded before it is written (or failed).
func (m *Manager) Flush(ctx context.Context) {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	m.mu.Lock()
	var dirty []string
	for name, b := range m.blocks {
		if b.dirty {
			dirty = append(dirty, name)
		}
	}
	m.mu.Unlock()
	for _, name := range dirty {
		if err := m.flushBlock(ctx, name); err != nil {
			m.deps.Log.Warn("ipam block not written back; retrying", "block", name, "err", err)
		}
	}
}

// flushBlock makes the block's object list this node's records (keeping other nodes'
// entries), and shares it when asked to; a conflict re-reads the object and tries again.
func (m *Manager) flushBlock(ctx context.Context, name string) error {
	refetch := false
	for attempt := 0; attempt < casAttempts; attempt++ {
		m.mu.Lock()
		b := m.blocks[name]
		if b == nil {
			m.mu.Unlock()
			return nil
		}
		b.dirty = false
		obj := b.obj
		m.mu.Unlock()
		if obj == nil || refetch {
			fresh, err := m.deps.API.Get(ctx, name)
			if apierrors.IsNotFound(err) {
				return m.forgetBlock(name)
			}
			if err != nil {
				m.markDirty(name)
				return err
			}
			obj = fresh
			m.mu.Lock()
			b.obj = fresh
			m.mu.Unlock()
		}
		m.mu.Lock()
		next := m.desired(b, obj)
		m.mu.Unlock()
		if next == nil {
			return nil
		}
		updated, err := m.deps.API.Update(ctx, next)
		switch {
		case err == nil:
			m.mu.Lock()
			b.obj = updated
			if !updated.Spec.Shared && len(updated.Spec.ShareWanted) == 0 {
				b.sharing = false
			}
			m.mu.Unlock()
			return nil
		case apierrors.IsConflict(err), apierrors.IsNotFound(err):
			refetch = true
			m.markDirty(name)
		default:
			m.markDirty(name)
			return err
		}
	}
	m.markDirty(name)
	return nil
}

func (m *Manager) markDirty(name string) {
	m.mu.Lock()
	if b := m.blocks[name]; b != nil {
		b.dirty = true
	}
	m.mu.Unlock()
}

// desired is obj with this node's entries replaced by its records (entries of allocations in
// flight kept), shared if asked to be; nil when nothing changes. The caller holds mu.
func (m *Manager) desired(b *block, obj *blocks.IPBlock) *blocks.IPBlock {
	next := obj.DeepCopy()
	alloc := map[string]blocks.Allocation{}
	for k, e := range obj.Spec.Allocations {
		a, err := netip.ParseAddr(k)
		if err != nil || e.Node != m.node || m.pending[recKey(b.pool, a)] || m.unreadable(b, a) {
			alloc[k] = e
		}
	}
	for _, u := range m.unread { // kept, or written, as this node's: nobody else may take them
		if k := u.addr.String(); u.label == b.label && b.prefix.Contains(u.addr) && alloc[k].Node == "" {
			alloc[k] = blocks.Allocation{Node: m.node}
		}
	}
	for _, r := range m.ledger.recs {
		if r.Block != b.name {
			continue
		}
		k := r.Addr.String()
		if e, ok := alloc[k]; ok && e.Node != m.node {
			m.deps.Log.Error("ipam: the block gives an address this node holds to another node",
				"block", b.name, "ip", k, "other", e.Node, "pod", e.Pod, "ours", r.Pod)
			continue
		}
		alloc[k] = allocationOf(r, m.node)
	}
	if len(alloc) > 0 || next.Spec.Allocations != nil {
		next.Spec.Allocations = alloc
	}
	switch {
	case obj.Spec.Node == m.node && !obj.Spec.Shared && (b.sharing || len(obj.Spec.ShareWanted) > 0):
		b.sharing, b.sharedAt = true, time.Now()
		next.Spec.Shared, next.Spec.ShareWanted = true, nil
	case unshare(obj, m.node) && !foreign(alloc, m.node) && time.Since(b.sharedAt) > m.set.ShareWait:
		// No other node holds an address here any more: the owner allocates alone again.
		// A borrower's compare-and-swap in flight conflicts and finds the block unshared.
		next.Spec.Shared = false
	}
	next.Recount(obj.Spec.Used + obj.Spec.Free - len(alloc))
	if equalSpec(obj.Spec, next.Spec) {
		return nil
	}
	return next
}

// unshare reports whether b is node's shared block that nobody asks to share.
func unshare(b *blocks.IPBlock, node string) bool {
	return b.Spec.Node == node && b.Spec.Shared && len(b.Spec.ShareWanted) == 0
}

// foreign reports whether an allocation belongs to another node.
func foreign(alloc map[string]blocks.Allocation, node string) bool {
	for _, e := range alloc {
		if e.Node != node {
			return true
		}
	}
	return false
}

func equalSpec(x, y blocks.IPBlockSpec) bool {
	return x.Node == y.Node && x.Shared == y.Shared && x.Used == y.Used && x.Free == y.Free &&
		slices.Equal(x.ShareWanted, y.ShareWanted) &&
		maps.EqualFunc(x.Allocations, y.Allocations, func(a, b blocks.Allocation) bool {
			return a.Node == b.Node && a.Pod == b.Pod && a.UID == b.UID && a.ContainerID == b.ContainerID &&
				a.IfName == b.IfName && a.HeldUntil.Equal(b.HeldUntil)
		})
}

// forgetBlock drops a block that no longer exists; the node's records in it stay (DEL still
// frees them) but a block deleted under them is reported.
func (m *Manager) forgetBlock(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, r := range m.ledger.recs {
		if r.Block == name {
			n++
		}
	}
	if n > 0 {
		m.deps.Log.Error("ipam block deleted while this node holds addresses in it", "block", name, "addresses", n)
	}
	delete(m.blocks, name)
	return nil
}
