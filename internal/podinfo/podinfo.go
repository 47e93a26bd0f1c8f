// Package podinfo answers "which pod is this sandbox, and what do its networks say" from
// informer caches: the pods of this node and every NetworkAttachmentDefinition. In the steady
// state a CNI ADD costs no API request; a pod or NAD younger than the cache is fetched once.
package podinfo

import (
	"context"
	"errors"
	"fmt"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	nadinformers "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/informers/externalversions"
	nadlisters "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/listers/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// ErrStaleSandbox is returned when the pod of that name now has another UID: the sandbox
// belongs to a pod that no longer exists.
var ErrStaleSandbox = errors.New("pod UID does not match the sandbox (stale sandbox)")

// ErrNotFound is returned when a pod or NAD exists neither in the cache nor in the API.
var ErrNotFound = errors.New("not found")

// Source reads pods and NADs.
type Source struct {
	client  kubernetes.Interface
	nads    nadclient.Interface
	podInf  informers.SharedInformerFactory
	nadInf  nadinformers.SharedInformerFactory
	pods    corelisters.PodLister
	nadList nadlisters.NetworkAttachmentDefinitionLister
	synced  []cache.InformerSynced
	// PodInformer lets other parts (hot plug) watch the same cache.
	PodInformer cache.SharedIndexInformer
}

// New builds the caches for the pods scheduled on node.
func New(client kubernetes.Interface, nads nadclient.Interface, node string) *Source {
	podInf := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
		}),
		informers.WithTransform(trimPod))
	nadInf := nadinformers.NewSharedInformerFactory(nads, 0)
	s := &Source{client: client, nads: nads, podInf: podInf, nadInf: nadInf}
	s.PodInformer = podInf.Core().V1().Pods().Informer()
	s.pods = podInf.Core().V1().Pods().Lister()
	nadInformer := nadInf.K8sCniCncfIo().V1().NetworkAttachmentDefinitions()
	s.nadList = nadInformer.Lister()
	s.synced = []cache.InformerSynced{s.PodInformer.HasSynced, nadInformer.Informer().HasSynced}
	return s
}

// trimPod keeps what multinet reads of a pod, so the cache stays small on busy nodes.
func trimPod(obj any) (any, error) {
	if pod, ok := obj.(*corev1.Pod); ok {
		pod.ManagedFields = nil
		pod.Spec = corev1.PodSpec{NodeName: pod.Spec.NodeName}
		pod.Status = corev1.PodStatus{Phase: pod.Status.Phase}
	}
	return obj, nil
}

// Start runs the informers until ctx ends and waits (bounded by ctx) for their first sync.
func (s *Source) Start(ctx context.Context) error {
	s.podInf.Start(ctx.Done())
	s.nadInf.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return fmt.Errorf("pod and NetworkAttachmentDefinition caches did not sync: %w", ctx.Err())
	}
	return nil
}

// Synced reports whether the caches are filled.
func (s *Source) Synced() bool {
	for _, f := range s.synced {
		if !f() {
			return false
		}
	}
	return true
}

// Pod returns the pod namespace/name; uid, when set, must match.
func (s *Source) Pod(ctx context.Context, namespace, name, uid string) (*corev1.Pod, error) {
	pod, err := s.pods.Pods(namespace).Get(name)
	if err == nil && (uid == "" || string(pod.UID) == uid) {
		return pod, nil
	}
	// Not in the cache yet, or the cache holds an older pod of that name: ask once.
	pod, err = s.client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
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
	nad, err = s.nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("NetworkAttachmentDefinition %s/%s: %w", namespace, name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get NetworkAttachmentDefinition %s/%s: %w", namespace, name, err)
	}
	return nad, nil
}
