// Package podinfo answers "which pod is this sandbox, and what do its networks say" from
// informer caches: the pods of this node and every NetworkAttachmentDefinition. In the steady
// state a CNI ADD costs no API request; a pod or NAD younger than the cache is fetched once.
// The caches hold only the fields multinet reads, so they stay small on busy nodes.
package podinfo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned/typed/k8s.cni.cncf.io/v1"
	nadlisters "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/listers/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// ErrStaleSandbox is returned when the pod of that name now has another UID: the sandbox
// belongs to a pod that no longer exists.
var ErrStaleSandbox = errors.New("pod UID does not match the sandbox (stale sandbox)")

// ErrNotFound is returned when a pod or NAD exists neither in the cache nor in the API.
var ErrNotFound = errors.New("not found")

// ErrNotSynced is returned (wrapped) by Source.Synced while the caches have not been
// filled yet: an ADD cannot be served.
var ErrNotSynced = errors.New("multinetd's pod and NetworkAttachmentDefinition caches are not synced yet")

// PodAPI is what Source asks the API server about pods (coreapi.Client answers it).
type PodAPI interface {
	ListPods(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.PodList, error)
	WatchPods(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
	GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error)
}

// Source reads pods and NADs.
type Source struct {
	client  PodAPI
	nads    nadclient.NetworkAttachmentDefinitionsGetter
	pods    corelisters.PodLister
	nadList nadlisters.NetworkAttachmentDefinitionLister
	nadInf  cache.SharedIndexInformer
	// PodInformer lets other parts (hot plug) watch the same cache.
	PodInformer cache.SharedIndexInformer

	mu      sync.Mutex
	listErr error // the caches' last failure to list or watch, until they synced
}

// New builds the caches for the pods scheduled on node. Only the pod and NAD informers are
// built (not a factory of every API group's), each trimming what it stores.
func New(client PodAPI, nads nadclient.NetworkAttachmentDefinitionsGetter, node string) *Source {
	s := &Source{client: client, nads: nads}
	onNode := fields.OneTermEqualSelector("spec.nodeName", node).String()
	s.PodInformer = newInformer(&corev1.Pod{}, trimPod, s.failed, client, &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = onNode
			l, err := client.ListPods(ctx, metav1.NamespaceAll, o)
			return l, s.noted(err, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = onNode
			w, err := client.WatchPods(ctx, metav1.NamespaceAll, o)
			return w, s.noted(err, o)
		},
	})
	s.nadInf = newInformer(&nadv1.NetworkAttachmentDefinition{}, trimNAD, s.failed, nads, &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			l, err := nads.NetworkAttachmentDefinitions(metav1.NamespaceAll).List(ctx, o)
			return l, s.noted(err, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := nads.NetworkAttachmentDefinitions(metav1.NamespaceAll).Watch(ctx, o)
			return w, s.noted(err, o)
		},
	})
	s.pods = corelisters.NewPodLister(s.PodInformer.GetIndexer())
	s.nadList = nadlisters.NewNetworkAttachmentDefinitionLister(s.nadInf.GetIndexer())
	return s
}

// resyncCheck is how often an informer looks for handlers due a resync. Not 0: an informer
// built with 0 ignores the resync period its handlers ask for (hot plug's 5 minutes).
const resyncCheck = time.Hour

// newInformer is a namespace-indexed informer over lw, which asks client; handlers added
// without a period of their own get a resync every resyncCheck. The informer fills its cache
// from a watch-list stream where the API server has one (client-go's first try), unless
// client says it cannot stream (client-go's fakes).
func newInformer(obj runtime.Object, trim cache.TransformFunc, failed cache.WatchErrorHandlerWithContext,
	client any, lw *cache.ListWatch) cache.SharedIndexInformer {
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, client), obj, resyncCheck,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	// Neither call fails on an informer that has not started.
	_ = inf.SetTransform(trim)
	_ = inf.SetWatchErrorHandlerWithContext(failed)
	return inf
}

// trimPod keeps what multinet reads of a pod: its identity, labels, annotations, controller,
// deletion mark, node, phase, named container ports and ResourceClaims (device-backed
// networks resolve them).
func trimPod(obj any) (any, error) {
	if pod, ok := obj.(*corev1.Pod); ok {
		ctl := metav1.GetControllerOfNoCopy(pod) // multinet-ipam holds a StatefulSet pod's addresses
		trimMeta(&pod.ObjectMeta)
		if ctl != nil {
			pod.OwnerReferences = []metav1.OwnerReference{*ctl}
		}
		pod.Spec = corev1.PodSpec{NodeName: pod.Spec.NodeName, Containers: namedPorts(pod.Spec.Containers),
			ResourceClaims: pod.Spec.ResourceClaims}
		pod.Status = corev1.PodStatus{Phase: pod.Status.Phase, ResourceClaimStatuses: pod.Status.ResourceClaimStatuses,
			ExtendedResourceClaimStatus: pod.Status.ExtendedResourceClaimStatus}
	}
	return obj, nil
}

// namedPorts keeps, of containers, the named ports (MultiNetworkPolicy resolves them).
func namedPorts(cs []corev1.Container) []corev1.Container {
	var out []corev1.Container
	for _, c := range cs {
		var ports []corev1.ContainerPort
		for _, p := range c.Ports {
			if p.Name != "" {
				ports = append(ports, corev1.ContainerPort{Name: p.Name, ContainerPort: p.ContainerPort, Protocol: p.Protocol})
			}
		}
		if len(ports) > 0 {
			out = append(out, corev1.Container{Name: c.Name, Ports: ports})
		}
	}
	return out
}

// trimNAD keeps a NAD's identity, annotations and config.
func trimNAD(obj any) (any, error) {
	if nad, ok := obj.(*nadv1.NetworkAttachmentDefinition); ok {
		trimMeta(&nad.ObjectMeta)
	}
	return obj, nil
}

// lastApplied is kubectl's copy of the whole object, as large as what it copies.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

func trimMeta(m *metav1.ObjectMeta) {
	m.ManagedFields = nil
	m.OwnerReferences = nil
	delete(m.Annotations, lastApplied)
}

// noted records err, a list's or watch's (for Synced's error), and returns it. An informer
// first asks for a watch-list stream and, while the API server cannot be reached, retries it
// without telling its error handler: the error is taken here. A server that answers the
// stream with a refusal (one without the WatchList feature) is not a failure: the informer
// lists next.
func (s *Source) noted(err error, o metav1.ListOptions) error {
	var status apierrors.APIStatus
	if err == nil || (o.SendInitialEvents != nil && *o.SendInitialEvents && errors.As(err, &status)) {
		return err
	}
	s.mu.Lock()
	s.listErr = err
	s.mu.Unlock()
	return err
}

// failed records the caches' failure to list or watch (for Synced's error) and logs it as
// client-go does.
func (s *Source) failed(ctx context.Context, r *cache.Reflector, err error) {
	s.mu.Lock()
	s.listErr = err
	s.mu.Unlock()
	cache.DefaultWatchErrorHandler(ctx, r, err)
}

// Start runs the informers until ctx ends; it does not wait for them to fill.
func (s *Source) Start(ctx context.Context) {
	go s.PodInformer.RunWithContext(ctx)
	go s.nadInf.RunWithContext(ctx)
}

// WaitForSync waits until the caches are filled or ctx ends, and reports whether they are.
func (s *Source) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), s.PodInformer.HasSynced, s.nadInf.HasSynced)
}

// ListErr is the error of the caches' last failed list or watch; nil if none has failed.
func (s *Source) ListErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listErr
}

// Synced is nil once the caches are filled; until then an error wrapping ErrNotSynced that
// says whether the API server can be reached.
func (s *Source) Synced() error {
	if s.PodInformer.HasSynced() && s.nadInf.HasSynced() {
		return nil
	}
	s.mu.Lock()
	err := s.listErr
	s.mu.Unlock()
	var status apierrors.APIStatus
	switch {
	case err == nil:
		return fmt.Errorf("%w (first list from the API server in progress)", ErrNotSynced)
	case errors.As(err, &status):
		return fmt.Errorf("%w: the API server answers but the list failed: %w", ErrNotSynced, err)
	default:
		return fmt.Errorf("%w: the API server is not reachable: %w", ErrNotSynced, err)
	}
}

// Pod returns the pod namespace/name; uid, when set, must match.
func (s *Source) Pod(ctx context.Context, namespace, name, uid string) (*corev1.Pod, error) {
	pod, err := s.pods.Pods(namespace).Get(name)
	if err == nil && (uid == "" || string(pod.UID) == uid) {
		return pod, nil
	}
	// Not in the cache yet, or the cache holds an older pod of that name: ask once.
	pod, err = s.client.GetPod(ctx, namespace, name)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("pod %s/%s: %w", namespace, name, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("get pod %s/%s: %w", namespace, name, err)
	case uid != "" && pod.UID != types.UID(uid):
		return nil, fmt.Errorf("pod %s/%s has UID %s, sandbox is for %s: %w", namespace, name, pod.UID, uid, ErrStaleSandbox)
	}
	return pod, nil
}

// NAD returns the NetworkAttachmentDefinition namespace/name.
func (s *Source) NAD(ctx context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	nad, err := s.nadList.NetworkAttachmentDefinitions(namespace).Get(name)
	if err == nil {
		return nad, nil
	}
	nad, err = s.nads.NetworkAttachmentDefinitions(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("NetworkAttachmentDefinition %s/%s: %w", namespace, name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get NetworkAttachmentDefinition %s/%s: %w", namespace, name, err)
	}
	return nad, nil
}
