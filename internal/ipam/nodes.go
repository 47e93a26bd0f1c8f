package ipam

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
)

// PodLister lists pods (coreapi.Client answers it).
type PodLister interface {
	ListPods(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.PodList, error)
}

// Back-off of PodsOnNode for a node found with pods left: from podsWaitMin, doubling, to
// podsWaitMax. The pod garbage collector deletes the pods of a deleted node within a
// minute; pods left longer (no controller manager) are asked about less and less often.
const (
	podsWaitMin = time.Minute
	podsWaitMax = 30 * time.Minute
)

// nodesListTimeout bounds the Node informer's LIST; the reflector retries one that failed.
const nodesListTimeout = time.Minute

// errNodesNotListed answers NodeExists until the Node informer has listed the Nodes.
var errNodesNotListed = errors.New("node objects not listed from the API server yet")

// KubeNodes answers the reconciler's questions about nodes, asking the API server as little
// as an idle node can: whether a Node exists comes from an informer over the metadata of
// every Node (no spec, no status), started by the first question and run until the context
// of NewKubeNodes ends, so a reconcile asks nothing whatever the number of nodes. Whether
// pods are left on a node whose Node is gone is a LIST of at most one pod, asked again of
// a node that has some only after a back-off.
type KubeNodes struct {
	ctx  context.Context
	lw   cache.ListerWatcher
	pods PodLister
	now  func() time.Time

	once sync.Once
	inf  cache.SharedIndexInformer

	mu   sync.Mutex
	busy map[string]podsLeft // nodes found with pods left, by name
}

// podsLeft is when to ask again about a node found with pods, and how long it waited last.
type podsLeft struct {
	next time.Time
	wait time.Duration
}

// NewKubeNodes answers from meta (Node metadata) and pods; its Node informer runs until ctx ends.
func NewKubeNodes(ctx context.Context, meta metadata.Interface, pods PodLister) *KubeNodes {
	nodes := meta.Resource(corev1.SchemeGroupVersion.WithResource("nodes"))
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			ctx, cancel := context.WithTimeout(ctx, nodesListTimeout)
			defer cancel()
			return nodes.List(ctx, opts)
		},
		// The reflector ends the watch with Stop, and bounds it with opts.TimeoutSeconds.
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return nodes.Watch(ctx, opts)
		},
	}
	return newKubeNodes(ctx, lw, pods)
}

func newKubeNodes(ctx context.Context, lw cache.ListerWatcher, pods PodLister) *KubeNodes {
	return &KubeNodes{ctx: ctx, lw: lw, pods: pods, now: time.Now, busy: map[string]podsLeft{}}
}

// informer starts the Node informer, once, and returns it.
func (k *KubeNodes) informer() cache.SharedIndexInformer {
	k.once.Do(func() {
		k.inf = cache.NewSharedIndexInformer(k.lw, &metav1.PartialObjectMetadata{}, 0, cache.Indexers{})
		// The name is all the cache needs: a Node's labels, annotations and managed fields go.
		_ = k.inf.SetTransform(func(obj any) (any, error) {
			if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
				return &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
					Name: m.Name, UID: m.UID, ResourceVersion: m.ResourceVersion}}, nil
			}
			return obj, nil
		})
		go k.inf.RunWithContext(k.ctx)
	})
	return k.inf
}

// NodeExists reports whether the Node object exists. Until the informer has listed the
// Nodes, it answers an error: the reconciler takes no node for gone on a guess.
func (k *KubeNodes) NodeExists(_ context.Context, name string) (bool, error) {
	inf := k.informer()
	if !inf.HasSynced() {
		return false, errNodesNotListed
	}
	_, ok, err := inf.GetStore().GetByKey(name)
	if ok {
		k.mu.Lock()
		delete(k.busy, name) // a Node of that name is back
		k.mu.Unlock()
	}
	return ok, err
}

// PodsOnNode reports whether any pod is still bound to the node. A node found with pods
// is not asked about again before its back-off has passed: it has pods until then.
func (k *KubeNodes) PodsOnNode(ctx context.Context, name string) (bool, error) {
	now := k.now()
	k.mu.Lock()
	left, found := k.busy[name]
	k.mu.Unlock()
	if found && now.Before(left.next) {
		return true, nil
	}
	l, err := k.pods.ListPods(ctx, metav1.NamespaceAll, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", name).String(), Limit: 1})
	if err != nil {
		return false, fmt.Errorf("list pods of node %s: %w", name, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(l.Items) == 0 {
		delete(k.busy, name)
		return false, nil
	}
	wait := podsWaitMin
	if found {
		wait = min(2*left.wait, podsWaitMax)
	}
	k.busy[name] = podsLeft{next: now.Add(wait), wait: wait}
	return true, nil
}
