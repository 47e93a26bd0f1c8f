package policy

import (
	"context"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// peerWatch runs the cache of the pods of other nodes while some policy selects peers by
// labels (state.needsPeers), and stops it, dropping what it held, when none does.
type peerWatch struct {
	c   *Controller
	src Sources

	stop   context.CancelFunc
	inf    cache.SharedIndexInformer
	filled atomic.Bool
}

// synced tells whether Enforce may go on: no cache needed, or it has listed the pods.
func (w *peerWatch) synced() bool {
	w.c.mu.Lock()
	need := w.c.st.needsPeers()
	w.c.mu.Unlock()
	return !need || w.filled.Load()
}

// run starts and stops the cache as policies come and go, until ctx ends.
func (w *peerWatch) run(ctx context.Context) {
	for {
		w.c.mu.Lock()
		need := w.c.st.needsPeers()
		w.c.mu.Unlock()
		switch {
		case need && w.stop == nil:
			w.start(ctx)
		case !need && w.stop != nil:
			w.halt()
		}
		select {
		case <-ctx.Done():
			if w.stop != nil {
				w.stop()
			}
			return
		case <-w.c.kick:
		}
	}
}

func (w *peerWatch) start(ctx context.Context) {
	ctx, w.stop = context.WithCancel(ctx)
	notHere := fields.OneTermNotEqualSelector("spec.nodeName", w.src.Node).String()
	pods := w.src.Pods
	// The pods are streamed (watch-list) where the API server can: the first list is never
	// held whole in memory, only the trimmed peers are.
	w.inf = cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = notHere
			return pods.ListPods(ctx, metav1.NamespaceAll, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = notHere
			return pods.WatchPods(ctx, metav1.NamespaceAll, o)
		},
	}, pods), &corev1.Pod{}, 0, cache.Indexers{})
	_ = w.inf.SetTransform(toPeer)
	_, _ = w.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.c.onPeer(ctx, obj, false) },
		UpdateFunc: func(_, obj any) { w.c.onPeer(ctx, obj, false) },
		DeleteFunc: func(obj any) { w.c.onPeer(ctx, obj, true) },
	})
	w.c.Log.Info("network policy: watching the pods of other nodes (a policy selects peers)")
	go w.inf.RunWithContext(ctx)
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), w.inf.HasSynced) {
			w.filled.Store(true)
		}
	}()
}

func (w *peerWatch) halt() {
	w.stop()
	w.stop, w.inf = nil, nil
	w.filled.Store(false)
	w.c.mu.Lock()
	w.c.st.dropPeers()
	w.c.mu.Unlock()
	w.c.Log.Info("network policy: no policy selects peers: stopped watching the pods of other nodes")
}

// onPeer follows a pod of another node; ctx is its cache's: once ended (halt), nothing
// more is recorded, so that no pod outlives dropPeers.
func (c *Controller) onPeer(ctx context.Context, obj any, gone bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, ok := obj.(*peerPod)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	if gone {
		c.enqueue(c.st.setPeer(p.Namespace, p.Name, nil)...)
		return
	}
	c.enqueue(c.st.setPeer(p.Namespace, p.Name, p.pod)...)
}
