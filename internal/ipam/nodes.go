package ipam

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// NodeAPI is what KubeNodes asks the API server (coreapi.Client answers it).
type NodeAPI interface {
	GetNode(ctx context.Context, name string) (*corev1.Node, error)
	ListPods(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.PodList, error)
}

// KubeNodes answers the reconciler's questions about nodes from the API server.
type KubeNodes struct {
	Client NodeAPI
}

// NodeExists reports whether the Node object exists.
func (k KubeNodes) NodeExists(ctx context.Context, name string) (bool, error) {
	_, err := k.Client.GetNode(ctx, name)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("get node %s: %w", name, err)
	}
	return true, nil
}

// PodsOnNode reports whether any pod is still bound to the node.
func (k KubeNodes) PodsOnNode(ctx context.Context, name string) (bool, error) {
	l, err := k.Client.ListPods(ctx, metav1.NamespaceAll, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", name).String(), Limit: 1})
	if err != nil {
		return false, fmt.Errorf("list pods of node %s: %w", name, err)
	}
	return len(l.Items) > 0, nil
}
