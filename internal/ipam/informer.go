package ipam

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/multinet/multinet/internal/ipam/blocks"
)

// startInformer starts watching the IPBlocks, once.
func (m *Manager) startInformer() {
	m.startOnce.Do(func() {
		m.inf = blocks.NewInformer(m.deps.API, 0)
		_, _ = m.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    m.seen,
			UpdateFunc: func(_, obj any) { m.seen(obj) },
			DeleteFunc: m.gone,
		})
		go m.inf.RunWithContext(m.ctx)
		start := time.Now()
		go func() {
			// Polled finely: the first ADD of the node waits for this (client-go's
			// WaitForCacheSync polls every 100 ms).
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for !m.inf.HasSynced() {
				select {
				case <-m.ctx.Done():
					return
				case <-tick.C:
				}
			}
			close(m.infReady)
			m.deps.Log.Info("IPBlocks listed", "count", len(m.inf.GetStore().ListKeys()), "took", time.Since(start).Round(time.Millisecond))
		}()
	})
}

// startIfBlocks starts the informer if an IPBlock has this node's affinity (one
// label-selected list of at most one object), or if the list fails: a node restarted
// without records still answers share requests for its blocks.
func (m *Manager) startIfBlocks(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	l, err := m.deps.API.List(ctx, metav1.ListOptions{LabelSelector: blocks.NodeLabel + "=" + m.node, Limit: 1})
	switch {
	case err != nil:
		m.deps.Log.Warn("ipam: could not tell whether this node has IPBlocks: watching them", "err", err)
	case len(l.Items) == 0:
		return
	}
	m.startInformer()
}

// waitInformer starts the informer if need be and waits until it has listed the blocks.
func (m *Manager) waitInformer(ctx context.Context) error {
	m.startInformer()
	select {
	case <-m.infReady:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("IPBlocks not listed from the API server yet: %w: %w", ctx.Err(), errTryAgain)
	}
}

// synced reports whether the informer has listed the blocks.
func (m *Manager) synced() bool {
	select {
	case <-m.infReady:
		return true
	default:
		return false
	}
}

// seen keeps the newest version of the node's blocks and answers share requests.
func (m *Manager) seen(obj any) {
	o, ok := obj.(*blocks.IPBlock)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.blocks[o.Name]
	if b == nil {
		if o.Spec.Node != m.node && !m.hasEntries(o) {
			return
		}
		// The node's own block, or one with entries of the node that it has no record of
		// (a crash between a compare-and-swap and the record): the flusher sets it right.
		b = m.blockFor(o.Name, o.Spec.Pool, o.Spec.CIDR)
		b.dirty = true
	}
	b.obj = o
	if unshare(o, m.node) && !foreign(o.Spec.Allocations, m.node) && time.Since(b.sharedAt) > m.set.ShareWait {
		b.dirty = true // the borrowers are gone: the flusher takes the block back
	}
	if o.Spec.Node == m.node && !o.Spec.Shared && len(o.Spec.ShareWanted) > 0 && !b.sharing {
		b.sharing, b.dirty = true, true
		m.deps.Log.Info("ipam block shared on request", "block", o.Name, "asked by", o.Spec.ShareWanted)
		m.kickFlusher()
	}
}

func (m *Manager) gone(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	o, ok := obj.(*blocks.IPBlock)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if b := m.blocks[o.Name]; b != nil {
		b.obj = nil
		b.dirty = true
	}
}

// hasEntries reports whether the block's object lists addresses of this node.
func (m *Manager) hasEntries(o *blocks.IPBlock) bool {
	for _, e := range o.Spec.Allocations {
		if e.Node == m.node {
			return true
		}
	}
	return false
}
