package policy

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"

	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/firewall"
	"github.com/multinet/multinet/internal/policy/spec"
)

// PodAPI lists and watches pods (coreapi.Client answers it).
type PodAPI interface {
	ListPods(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.PodList, error)
	WatchPods(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
}

// Sources are what the controller watches.
type Sources struct {
	Dynamic  dynamic.Interface  // MultiNetworkPolicies
	Metadata metadata.Interface // namespaces' labels
	Pods     PodAPI             // pods of other nodes, while a policy selects peers
	Node     string
	// LocalPods is the informer of this node's pods: label changes reprogram.
	LocalPods cache.SharedIndexInformer
	// CRDPoll is how often a daemon that found no MultiNetworkPolicy CRD looks again.
	CRDPoll time.Duration
}

// Run enforces policies until ctx ends: it finds the served version of the CRD (looking
// again every CRDPoll while there is none), fills the caches, programs every sandbox of the
// node, then follows events. Enforce waits for it to get that far.
func (c *Controller) Run(ctx context.Context, src Sources) {
	defer firewall.Closed()
	defer c.queue.ShutDown()
	version, err := c.findVersion(ctx, src)
	if err != nil {
		return
	}
	pols := c.policyInformer(src.Dynamic, version)
	nss := c.namespaceInformer(src.Metadata)
	go pols.RunWithContext(ctx)
	go nss.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), pols.HasSynced, nss.HasSynced) {
		return
	}
	if src.LocalPods != nil {
		_, _ = src.LocalPods.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: c.onLocalPod})
	}
	peers := &peerWatch{c: c, src: src}
	c.mu.Lock()
	c.on = true
	c.peersSynced = peers.synced
	c.mu.Unlock()
	c.Log.Info("enforcing MultiNetworkPolicy", "version", version)
	c.loadSandboxes(ctx)
	c.markReady()
	for range c.cfg.Workers {
		go c.work()
	}
	peers.run(ctx)
}

// markReady lets Enforce go on; once.
func (c *Controller) markReady() {
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
}

// findVersion is the version of MultiNetworkPolicy to watch: v1beta2 where served, else
// v1beta1. With neither, enforcement is off (Enforce passes) until one is found.
func (c *Controller) findVersion(ctx context.Context, src Sources) (string, error) {
	poll := src.CRDPoll
	if poll <= 0 {
		poll = 30 * time.Second
	}
	for said := false; ; {
		v, err := servedVersion(ctx, src.Dynamic)
		wait := poll
		switch {
		case err == nil && v != "":
			return v, nil
		case err != nil: // no decision: ADDs fail, saying why, until there is one
			c.Log.Warn("MultiNetworkPolicy: cannot tell whether the CRD is served; asking again", "err", err)
			c.mu.Lock()
			c.lastErr = fmt.Errorf("listing multi-networkpolicies (RBAC, or the API server; networkPolicy: false turns enforcement off): %w", err)
			c.mu.Unlock()
			wait = 2 * time.Second
		case !said:
			c.Log.Info("MultiNetworkPolicy CRD not served: enforcement off until it is", "lookAgainEvery", poll)
			said = true
			c.markReady() // no CRD, no policy: ADDs go on without rules meanwhile
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
	}
}

// servedVersion is v1beta2 where served, else v1beta1, else "".
func servedVersion(ctx context.Context, client dynamic.Interface) (string, error) {
	for _, v := range []string{spec.V1beta2, spec.V1beta1} {
		_, err := client.Resource(spec.GroupVersionResource(v)).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return v, nil
		}
		if !apierrors.IsNotFound(err) {
			return "", err
		}
	}
	return "", nil
}

// policyInformer watches MultiNetworkPolicies, kept as their typed, trimmed objects.
func (c *Controller) policyInformer(client dynamic.Interface, version string) cache.SharedIndexInformer {
	res := client.Resource(spec.GroupVersionResource(version))
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return res.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return res.Watch(ctx, o)
		},
	}, &unstructured.Unstructured{}, 0, cache.Indexers{})
	_ = inf.SetTransform(toPolicy)
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.onPolicy(nil, obj) },
		UpdateFunc: c.onPolicy,
		DeleteFunc: func(obj any) { c.onPolicyGone(obj) },
	})
	return inf
}

// toPolicy turns a listed or watched object into a *spec.MultiNetworkPolicy.
func toPolicy(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	p := &spec.MultiNetworkPolicy{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, p); err != nil {
		// kept as a policy that fails to parse, so that it is reported and removed in turn
		p.Name, p.Namespace, p.ResourceVersion = u.GetName(), u.GetNamespace(), u.GetResourceVersion()
		p.Annotations = map[string]string{badObject: err.Error()}
		return p, nil
	}
	p.ManagedFields = nil
	p.OwnerReferences = nil
	delete(p.Annotations, "kubectl.kubernetes.io/last-applied-configuration")
	return p, nil
}

// badObject marks, in a trimmed policy's annotations, an object that could not be decoded.
const badObject = "multinet.io/undecodable"

func (c *Controller) onPolicy(old, cur any) {
	p, ok := cur.(*spec.MultiNetworkPolicy)
	if !ok {
		return
	}
	key := p.Namespace + "/" + p.Name
	parsed, err := parse(p)
	if err != nil {
		c.Log.Warn("MultiNetworkPolicy ignored: invalid", "policy", key, "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enqueue(c.st.setPolicy(key, c.st.policies[key], parsed)...)
	c.policiesChanged()
}

func (c *Controller) onPolicyGone(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	p, ok := obj.(*spec.MultiNetworkPolicy)
	if !ok {
		return
	}
	key := p.Namespace + "/" + p.Name
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enqueue(c.st.setPolicy(key, c.st.policies[key], nil)...)
	c.policiesChanged()
}

// parse is spec.Parse for an object that decoded.
func parse(p *spec.MultiNetworkPolicy) (*spec.Policy, error) {
	if msg, bad := p.Annotations[badObject]; bad {
		return nil, errors.New(msg)
	}
	return spec.Parse(p)
}

// policiesChanged reports the count. Called with mu held.
func (c *Controller) policiesChanged() {
	if c.Observe.Policies != nil {
		c.Observe.Policies(len(c.st.policies))
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// namespaceInformer watches namespaces' labels (metadata only).
func (c *Controller) namespaceInformer(client metadata.Interface) cache.SharedIndexInformer {
	res := client.Resource(corev1.SchemeGroupVersion.WithResource("namespaces"))
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return res.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return res.Watch(ctx, o)
		},
	}, &metav1.PartialObjectMetadata{}, 0, cache.Indexers{})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.onNamespace(obj, false) },
		UpdateFunc: func(_, obj any) { c.onNamespace(obj, false) },
		DeleteFunc: func(obj any) { c.onNamespace(obj, true) },
	})
	return inf
}

func (c *Controller) onNamespace(obj any, gone bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enqueue(c.st.setNamespace(m.Name, m.Labels, gone)...)
}

// onLocalPod follows a label change of a pod of this node.
func (c *Controller) onLocalPod(old, cur any) {
	o, ok1 := old.(*corev1.Pod)
	p, ok2 := cur.(*corev1.Pod)
	if !ok1 || !ok2 || labelsEqual(o.Labels, p.Labels) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range c.st.sandboxesOfPod(string(p.UID)) {
		sb := *c.st.sandboxes[id]
		pod := *sb.pod
		pod.Labels = p.Labels
		sb.pod = &pod
		c.enqueue(c.st.setSandbox(id, &sb)...)
	}
}

func labelsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// loadSandboxes reads every record of the node at start: their tables are programmed again
// (a restart does not know what they hold).
func (c *Controller) loadSandboxes(ctx context.Context) {
	ids, err := c.Sandboxes.List()
	if err != nil {
		c.Log.Error("network policy: list checkpoint records", "err", err)
		return
	}
	for _, id := range ids {
		rec, err := c.Sandboxes.Load(id)
		if err != nil || rec.PodName == "" || rec.Netns == "" {
			continue
		}
		pod, err := c.Pods.Pod(ctx, rec.PodNamespace, rec.PodName, rec.PodUID)
		if err != nil {
			continue // a pod gone: its DEL comes
		}
		sb := sandboxOf(rec, pod)
		sb.stale = true
		c.mu.Lock()
		c.enqueue(c.st.setSandbox(sb.id, sb)...)
		c.mu.Unlock()
	}
}

// peerPod is a pod of another node as the peer cache holds it: its identity and the
// compiled view, nothing else.
type peerPod struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	pod *compile.Pod
}

// DeepCopyObject implements runtime.Object; a peerPod is never changed once made.
func (p *peerPod) DeepCopyObject() runtime.Object { c := *p; return &c }

// toPeer trims a pod of another node to a peerPod.
func toPeer(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &peerPod{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID,
		ResourceVersion: pod.ResourceVersion},
		pod: compile.PodOf(pod)}, nil
}
