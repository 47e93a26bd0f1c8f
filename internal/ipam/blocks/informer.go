package blocks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// Index names of the informer NewInformer returns.
const (
	ByPool = "pool" // Spec.Pool
	ByNode = "node" // Spec.Node; "" holds the blocks with no node
)

// listTimeout bounds one list (one page) of the informer, within the context it runs with.
const listTimeout = time.Minute

// NewInformer returns an informer over every IPBlock, indexed ByPool and ByNode, with the
// given resync period (0: none). The caller runs it and stops it.
func NewInformer(c Client, resync time.Duration) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			ctx, cancel := context.WithTimeout(ctx, listTimeout)
			defer cancel()
			return c.List(ctx, opts)
		},
		// The reflector ends the watch with Stop, and bounds it with opts.TimeoutSeconds.
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return c.Watch(ctx, opts)
		},
	}
	return cache.NewSharedIndexInformer(lw, &IPBlock{}, resync, cache.Indexers{
		ByPool: indexBy(func(b *IPBlock) string { return b.Spec.Pool }),
		ByNode: indexBy(func(b *IPBlock) string { return b.Spec.Node }),
	})
}

func indexBy(key func(*IPBlock) string) cache.IndexFunc {
	return func(obj any) ([]string, error) {
		b, ok := obj.(*IPBlock)
		if !ok {
			return nil, fmt.Errorf("ipblock index: got %T", obj)
		}
		return []string{key(b)}, nil
	}
}

// ListByPool returns the blocks of pool in inf's cache, by name. They are the cache's own:
// DeepCopy one before changing it. inf must come from NewInformer.
func ListByPool(inf cache.SharedIndexInformer, pool string) []*IPBlock {
	return listBy(inf, ByPool, pool)
}

// ListByNode returns the blocks with affinity to node ("" for those with none) in inf's
// cache, by name, as ListByPool does.
func ListByNode(inf cache.SharedIndexInformer, node string) []*IPBlock {
	return listBy(inf, ByNode, node)
}

func listBy(inf cache.SharedIndexInformer, index, value string) []*IPBlock {
	objs, err := inf.GetIndexer().ByIndex(index, value)
	if err != nil {
		// Only an informer without the index: a programming error that an empty answer
		// would hide (an allocator would see no blocks and claim new ones).
		panic(fmt.Sprintf("ipblocks: informer not made by NewInformer: %v", err))
	}
	out := make([]*IPBlock, 0, len(objs))
	for _, o := range objs {
		if b, ok := o.(*IPBlock); ok {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(x, y *IPBlock) int { return strings.Compare(x.Name, y.Name) })
	return out
}
