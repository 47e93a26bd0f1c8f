// Package coreapitest lets tests hand a client-go clientset (a fake one, or one of the test
// control plane) to code that takes the narrow API of package coreapi.
package coreapitest

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/watchlist"
)

// Clientset has the methods of coreapi.Client, answered by a clientset.
type Clientset struct{ kubernetes.Interface }

// ListPods lists the pods of namespace.
func (c Clientset) ListPods(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.PodList, error) {
	return c.CoreV1().Pods(namespace).List(ctx, opts)
}

// WatchPods watches the pods of namespace.
func (c Clientset) WatchPods(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	return c.CoreV1().Pods(namespace).Watch(ctx, opts)
}

// GetPod reads one pod.
func (c Clientset) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	return c.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
}

// PatchPod patches one pod.
func (c Clientset) PatchPod(ctx context.Context, namespace, name string, pt types.PatchType, patch []byte) error {
	_, err := c.CoreV1().Pods(namespace).Patch(ctx, name, pt, patch, metav1.PatchOptions{})
	return err
}

// IsWatchListSemanticsUnSupported tells client-go's informers whether the clientset cannot
// stream a watch-list (client-go's fakes cannot: an informer over them lists).
func (c Clientset) IsWatchListSemanticsUnSupported() bool {
	return watchlist.DoesClientNotSupportWatchListSemantics(c.Interface)
}

// EventSink writes Events through the clientset.
func (c Clientset) EventSink() record.EventSink {
	return &typedcorev1.EventSinkImpl{Interface: c.CoreV1().Events("")}
}
