package ipam

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// KubeNodes answers the reconciler's questions about nodes from the API server.
type KubeNodes struct {
	Client corev1client.CoreV1Interface
}

// NodeExists reports whether the Node object exists.
func (k KubeNodes) NodeExists(ctx context.Context, name string) (bool, error) {
	_, err := k.Client.Nodes().Get(ctx, name, metav1.GetOptions{})
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
	l, err := k.Client.Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", name).String(), Limit: 1})
	if err != nil {
		return false, fmt.Errorf("list pods of node %s: %w", name, err)
	}
	return len(l.Items) > 0, nil
}
