package ipam

import (
	"context"
	"errors"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/multinet/multinet/internal/ipam/blocks"
	"github.com/multinet/multinet/internal/podinfo"
)

// runReconciler runs Reconcile every ReclaimInterval once the blocks are listed.
func (m *Manager) runReconciler(ctx context.Context) {
	tick := time.NewTicker(m.set.ReclaimInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if m.synced() {
			m.Reconcile(ctx, time.Now())
		}
	}
}

// Reconcile frees what nobody released: holds past their time, the addresses of pods gone
// for longer than the grace period, and the blocks and addresses of deleted nodes.
func (m *Manager) Reconcile(ctx context.Context, now time.Time) {
	m.takeBack()
	m.expireHolds(now)
	m.reclaimGonePods(ctx, now)
	m.reclaimDeadNodes(ctx)
}

// takeBack has the flusher unshare the node's shared blocks that no other node uses any more.
func (m *Manager) takeBack() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.blocks {
		if b.obj != nil && unshare(b.obj, m.node) && !foreign(b.obj.Spec.Allocations, m.node) && time.Since(b.sharedAt) > m.set.ShareWait {
			b.dirty = true
		}
	}
}

func (m *Manager) expireHolds(now time.Time) {
	m.mu.Lock()
	expired := m.ledger.expired(now)
	m.mu.Unlock()
	for _, r := range expired {
		m.reclaiming(r)
		if freed, err := m.release(r, false); err != nil || !freed {
			if err != nil {
				m.deps.Log.Warn("expired ipam hold not freed", "pod", r.Pod, "ip", r.Addr, "err", err)
			}
			continue // or taken back by its pod meanwhile
		}
		m.deps.Obs.IPAMReclaimed("hold")
		m.deps.Log.Info("ipam hold expired: address freed", "pod", r.Pod, "network", r.Network, "ip", r.Addr)
	}
}

// clockSkew is how far the node's clock and the API server's may differ: a pod created this
// much later than a record is not the record's pod.
const clockSkew = 5 * time.Minute

// reclaimGonePods frees the addresses of pods that no longer exist (a DEL that never came).
// Records are grouped by pod UID, or by sandbox when the runtime gave no UID.
func (m *Manager) reclaimGonePods(ctx context.Context, now time.Time) {
	if m.deps.Pods == nil {
		return
	}
	m.mu.Lock()
	byPod := map[string][]*record{}
	for _, r := range m.ledger.inUse() {
		if r.Pod == "/" || r.Pod == "" { // no pod to look up: the runtime's GC frees it
			continue
		}
		key := r.Pod + "/" + r.UID
		if r.UID == "" {
			key = r.Pod + "|" + r.ContainerID
		}
		byPod[key] = append(byPod[key], r)
	}
	m.mu.Unlock()
	for key, rs := range byPod {
		gone := m.podGone(ctx, rs)
		m.mu.Lock()
		since, seen := m.missing[key]
		switch {
		case !gone:
			delete(m.missing, key)
		case !seen:
			m.missing[key] = now
		}
		m.mu.Unlock()
		if !gone || !seen || now.Sub(since) < m.set.Grace {
			continue
		}
		for _, r := range rs {
			m.reclaiming(r)
			if freed, err := m.release(r, false); err != nil || !freed {
				if err != nil {
					m.deps.Log.Warn("address of a gone pod not freed", "pod", r.Pod, "ip", r.Addr, "err", err)
				}
				continue // or released meanwhile
			}
			m.deps.Obs.IPAMReclaimed("pod")
			m.deps.Log.Info("ipam address of a pod gone without DEL freed", "pod", r.Pod, "network", r.Network,
				"ip", r.Addr, "containerID", r.ContainerID, "gone for", now.Sub(since).Round(time.Second))
		}
		m.mu.Lock()
		delete(m.missing, key)
		m.mu.Unlock()
	}
}

// podGone reports whether the pod of the records (one pod's, or one sandbox's) is gone: no pod
// of the name, or one with another UID. Without a UID, the pod of the name is another one when
// it is not bound to this node (a pod never leaves its node), or was created more than
// clockSkew after the records. An error of the lookup is not gone.
func (m *Manager) podGone(ctx context.Context, rs []*record) bool {
	r := rs[0]
	ns, name, _ := strings.Cut(r.Pod, "/")
	pod, err := m.deps.Pods.Pod(ctx, ns, name, r.UID)
	switch {
	case errors.Is(err, podinfo.ErrNotFound) || errors.Is(err, podinfo.ErrStaleSandbox):
		return true
	case err != nil || r.UID != "":
		return false
	}
	newest := r.Created
	for _, x := range rs {
		if x.Created.After(newest) {
			newest = x.Created
		}
	}
	return pod.Spec.NodeName != m.node || pod.CreationTimestamp.After(newest.Add(clockSkew))
}

// reclaimDeadNodes frees the entries of nodes whose Node object is gone and that have no pod
// left, and deletes (or orphans, when other nodes hold addresses in them) their blocks. A node
// whose own Node object does not exist (a test bed without nodes) reclaims nothing. The
// blocks come from the informer and the Nodes from theirs: a reconcile of a node with
// nothing to reclaim asks the API server nothing; each node it finds without a Node object
// costs one question about its pods, once per reconcile at most.
func (m *Manager) reclaimDeadNodes(ctx context.Context) {
	if m.deps.Nodes == nil || !m.synced() {
		return
	}
	if ok, err := m.deps.Nodes.NodeExists(ctx, m.node); err != nil || !ok {
		return
	}
	dead := map[string]bool{}
	for _, o := range m.inf.GetStore().List() {
		b, ok := o.(*blocks.IPBlock)
		if !ok {
			continue
		}
		nodes := map[string]bool{b.Spec.Node: true}
		for _, e := range b.Spec.Allocations {
			nodes[e.Node] = true
		}
		for n := range nodes {
			if n == "" || n == m.node {
				continue
			}
			d, known := dead[n]
			if !known {
				d = m.nodeDead(ctx, n)
				dead[n] = d
			}
			if d {
				m.reclaimBlock(ctx, b, n)
			}
		}
	}
}

// nodeDead reports whether the node's Node object is gone and no pod is bound to it; when
// in doubt (an error, the Nodes not listed yet) it is alive.
func (m *Manager) nodeDead(ctx context.Context, node string) bool {
	exists, err := m.deps.Nodes.NodeExists(ctx, node)
	if err != nil || exists {
		return false
	}
	pods, err := m.deps.Nodes.PodsOnNode(ctx, node)
	return err == nil && !pods
}

// reclaimBlock removes a dead node's entries from a block; a block the dead node owned is
// deleted when empty, else left shared without an owner. The first try writes over the
// informer's copy (cached): every live node reclaims, and the first one's write reaches
// the others' informers, so they find nothing left to do without asking; a conflict reads
// the block afresh.
func (m *Manager) reclaimBlock(ctx context.Context, cached *blocks.IPBlock, deadNode string) {
	obj := cached
	for attempt := 0; attempt < casAttempts; attempt++ {
		if attempt > 0 {
			fresh, err := m.deps.API.Get(ctx, cached.Name)
			if err != nil {
				return
			}
			obj = fresh
		}
		next := obj.DeepCopy()
		n := 0
		for k, e := range next.Spec.Allocations {
			if e.Node == deadNode {
				delete(next.Spec.Allocations, k)
				n++
			}
		}
		owned := next.Spec.Node == deadNode
		if n == 0 && !owned {
			return // another node reclaimed it
		}
		var err error
		if owned && len(next.Spec.Allocations) == 0 {
			err = m.deps.API.Delete(ctx, obj.Name, obj.UID, obj.ResourceVersion)
		} else {
			if owned {
				next.Spec.Node, next.Spec.Shared, next.Spec.ShareWanted = "", true, nil
				delete(next.Labels, blocks.NodeLabel)
			}
			next.Recount(obj.Spec.Used + obj.Spec.Free - len(next.Spec.Allocations))
			_, err = m.deps.API.Update(ctx, next)
		}
		switch {
		case err == nil:
			m.deps.Log.Info("ipam: reclaimed a deleted node's addresses", "node", deadNode, "block", obj.Name,
				"addresses", n, "blockDeleted", owned && len(next.Spec.Allocations) == 0)
			for range n {
				m.deps.Obs.IPAMReclaimed("node")
			}
			return
		case apierrors.IsConflict(err):
			continue
		default:
			if !apierrors.IsNotFound(err) {
				m.deps.Log.Warn("ipam: reclaim of a deleted node's block failed", "node", deadNode, "block", obj.Name, "err", err)
			}
			return
		}
	}
}
