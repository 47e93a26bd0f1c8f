package ipam

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/multinet/multinet/internal/coreapi"
	"github.com/multinet/multinet/internal/ipam/blocks"
	"github.com/multinet/multinet/internal/testbed"
)

// nodes is the API server's Node objects and pods (KubeNodes on the test bed) through the
// clients of cfg (the test bed's admin when nil); its Node informer stops with the test.
func (w *world) nodes(t *testing.T, cfg *rest.Config) *KubeNodes {
	t.Helper()
	if cfg == nil {
		cfg = w.cp.Config
	}
	core, err := coreapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return NewKubeNodes(t.Context(), meta, core)
}

// testIdleReconcile: nodes whose blocks all belong to live nodes reconcile without a
// request about nodes or pods, however many nodes there are: the Node objects come from
// each node's informer, listed once.
func (w *world) testIdleReconcile(t *testing.T) {
	c := conf("idle", `"range":"10.71.0.0/24","network_name":"idle","block_size":28`)
	cnt := &apiCounter{n: map[string]int{}} // the requests of the nodes' Node and pod clients
	cfg := rest.CopyConfig(w.cp.Config)
	cfg.Wrap(cnt.wrap)
	var ms []*Manager
	var kns []*KubeNodes
	for i := range 4 {
		name := fmt.Sprintf("idle-%d", i)
		w.createNode(t, name)
		kns = append(kns, w.nodes(t, cfg))
		ms = append(ms, w.node(t, name, "", Deps{Nodes: kns[i]}))
		add(t, ms[i], c, "i-"+name, pod{"default", name, "u"})
	}
	flushAll(t, ms...)
	for i, m := range ms {
		eventually(t, m.node+" sees every node's block", func() bool { return len(blocksOf(m, "idle/v4")) == len(ms) })
		eventually(t, m.node+" lists the Nodes", func() bool {
			ok, err := kns[i].NodeExists(testbed.Ctx(t), m.node)
			return err == nil && ok
		})
	}
	before := cnt.snapshot()
	// client-go v0.35+ fills an informer from a watch-list stream where the API server has
	// one (WatchList on by default in 1.32 and from 1.34): one WATCH, no LIST of the Nodes.
	if before["list nodes"] != 0 || before["watch nodes"] < len(kns) {
		t.Errorf("the Node informers' requests to start: %v; want a watch-list stream each, no list", before)
	}
	for range 3 {
		for _, m := range ms {
			m.Reconcile(testbed.Ctx(t), time.Now())
		}
	}
	for kind, n := range cnt.snapshot() {
		if d := n - before[kind]; d > 0 {
			t.Errorf("3 reconciles of %d idle nodes made %d requests %q, want none", len(ms), d, kind)
		}
	}
	if n := len(w.allocated(t, "idle")); n != len(ms) {
		t.Errorf("%d allocations after the reconciles, want %d", n, len(ms))
	}
}

// blocksOf is the blocks of pool in m's informer.
func blocksOf(m *Manager, pool string) []*blocks.IPBlock {
	var out []*blocks.IPBlock
	for _, o := range m.inf.GetStore().List() {
		if b, ok := o.(*blocks.IPBlock); ok && b.Spec.Pool == pool {
			out = append(out, b)
		}
	}
	return out
}

// TestNodeUnknownUntilListed: until the Node informer has listed the Nodes, no node exists
// and none is missing: NodeExists answers an error, and the reconciler takes no node for
// dead. Both ways an informer fills its cache are run: a watch-list stream (client-go asks
// for one first since v0.35) and, where the server refuses the stream, a list.
func TestNodeUnknownUntilListed(t *testing.T) {
	for _, streams := range []bool{true, false} {
		t.Run(fmt.Sprintf("streams=%v", streams), func(t *testing.T) {
			release := make(chan struct{})
			fake := &fakeNodes{release: release, streams: streams}
			pods := &podCount{}
			k := newKubeNodes(t.Context(), fake.listWatch(), pods)
			m := &Manager{node: "a", deps: Deps{Nodes: k}}
			if ok, err := k.NodeExists(t.Context(), "b"); err == nil {
				t.Errorf("before the Nodes are listed, NodeExists(b) = %v, nil; want an error", ok)
			}
			if m.nodeDead(t.Context(), "b") {
				t.Error("before the Nodes are listed, node b is dead")
			}
			close(release)
			eventually(t, "the Nodes listed", k.inf.HasSynced)
			for name, want := range map[string]bool{"a": true, "b": false} {
				if ok, err := k.NodeExists(t.Context(), name); err != nil || ok != want {
					t.Errorf("NodeExists(%s) = %v, %v; want %v", name, ok, err, want)
				}
			}
			if !m.nodeDead(t.Context(), "b") || m.nodeDead(t.Context(), "a") {
				t.Error("once listed, b (no Node, no pods) is not dead or a (a Node) is")
			}
			if n := pods.calls.Load(); n != 1 {
				t.Errorf("pods listed %d times, want once (for b once listed)", n)
			}
			if got, want := fake.lists.Load(), map[bool]int32{true: 0, false: 1}[streams]; got != want {
				t.Errorf("the informer listed the Nodes %d times, want %d", got, want)
			}
		})
	}
}

// fakeNodes serves one Node, "a", once release is closed: as a list, or as a watch-list
// stream when streams is set. Without it a stream is refused, as a server without the
// WatchList feature refuses it.
type fakeNodes struct {
	release <-chan struct{}
	streams bool
	lists   atomic.Int32
}

func (f *fakeNodes) listWatch() *cache.ListWatch {
	a := metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "a", ResourceVersion: "1"}}
	return &cache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			f.lists.Add(1)
			<-f.release
			return &metav1.PartialObjectMetadataList{ListMeta: metav1.ListMeta{ResourceVersion: "1"},
				Items: []metav1.PartialObjectMetadata{a}}, nil
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			if o.SendInitialEvents == nil || !*o.SendInitialEvents {
				return watch.NewFake(), nil
			}
			if !f.streams {
				return nil, apierrors.NewBadRequest("sendInitialEvents is not supported")
			}
			w := watch.NewFakeWithChanSize(2, false)
			go func() {
				select {
				case <-ctx.Done():
					return
				case <-f.release:
				}
				w.Add(a.DeepCopy())
				w.Action(watch.Bookmark, &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1",
					Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}})
			}()
			return w, nil
		},
	}
}

// TestPodsOnNodeBacksOff: a node found with pods left is asked about again after a minute,
// then two, four... at most every half hour; once its pods are gone it is free of pods at
// the next question.
func TestPodsOnNodeBacksOff(t *testing.T) {
	pods := &podCount{left: 1}
	k := newKubeNodes(t.Context(), nil, pods)
	start := time.Now()
	at := start
	k.now = func() time.Time { return at }
	var asked []time.Duration
	for at.Before(start.Add(3 * time.Hour)) {
		n := pods.calls.Load()
		if has, err := k.PodsOnNode(t.Context(), "gone"); err != nil || !has {
			t.Fatalf("PodsOnNode = %v, %v; want true", has, err)
		}
		if pods.calls.Load() > n {
			asked = append(asked, at.Sub(start))
		}
		at = at.Add(time.Minute) // a reconcile a minute
	}
	want := []int{0, 1, 3, 7, 15, 31, 61, 91, 121, 151} // minutes
	if len(asked) != len(want) {
		t.Fatalf("asked at %v; want at %v minutes", asked, want)
	}
	for i, w := range want {
		if asked[i] != time.Duration(w)*time.Minute {
			t.Fatalf("asked at %v; want at %v minutes", asked, want)
		}
	}
	pods.left = 0
	at = at.Add(podsWaitMax)
	if has, err := k.PodsOnNode(t.Context(), "gone"); err != nil || has {
		t.Errorf("pods gone: PodsOnNode = %v, %v; want false", has, err)
	}
	if _, busy := k.busy["gone"]; busy {
		t.Error("a node without pods keeps its back-off")
	}
}

// podCount lists left pods on any node and counts the lists.
type podCount struct {
	left  int
	calls atomic.Int32
}

func (p *podCount) ListPods(context.Context, string, metav1.ListOptions) (*corev1.PodList, error) {
	p.calls.Add(1)
	return &corev1.PodList{Items: make([]corev1.Pod, p.left)}, nil
}
