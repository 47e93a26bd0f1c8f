package claims

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Source reads DRA objects: the daemon's informer listers, or an API client.
type Source interface {
	// ResourceClaim returns a claim, or an error apierrors.IsNotFound accepts.
	ResourceClaim(ctx context.Context, namespace, name string) (*resourcev1.ResourceClaim, error)
	// ResourceSlices returns the slices of a driver (those of other nodes may be left out).
	ResourceSlices(ctx context.Context, driver string) ([]*resourcev1.ResourceSlice, error)
}

// Gather reads what Resolve needs for pod: the ResourceClaims it names (one not found is
// left out, for Resolve to report as pending) and the ResourceSlices of their drivers.
func Gather(ctx context.Context, src Source, pod *corev1.Pod) (Objects, error) {
	obj := Objects{Pod: pod}
	var drivers []string
	for _, pc := range podClaims(pod) {
		if pc.pending {
			continue
		}
		claim, err := src.ResourceClaim(ctx, pod.Namespace, pc.claim)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return Objects{}, fmt.Errorf("pod %s/%s: claim %s/%s: %w", pod.Namespace, pod.Name, pod.Namespace, pc.claim, err)
		}
		obj.Claims = append(obj.Claims, claim)
		if claim.Status.Allocation == nil {
			continue
		}
		for _, r := range claim.Status.Allocation.Devices.Results {
			if !slices.Contains(drivers, r.Driver) {
				drivers = append(drivers, r.Driver)
			}
		}
	}
	for _, d := range drivers {
		s, err := src.ResourceSlices(ctx, d)
		if err != nil {
			return Objects{}, fmt.Errorf("pod %s/%s: ResourceSlices of driver %s: %w", pod.Namespace, pod.Name, d, err)
		}
		obj.Slices = append(obj.Slices, s...)
	}
	return obj, nil
}
