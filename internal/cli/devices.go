package cli

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// withDevices sets, on each interface of each view, the DRA device attached as it: the
// status.devices entry of one of the pod's ResourceClaims whose networkData names the
// interface (multinet writes it for a device-backed network, docs/dra.md). It reads each
// claim the pod names, and nothing for a pod without claims.
func withDevices(ctx context.Context, c *clients, pods []corev1.Pod, views []*PodNetworks) error {
	var errs []error
	for i := range pods {
		pod := &pods[i]
		for _, name := range claimNames(pod) {
			claim, err := c.core.ResourceV1().ResourceClaims(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("pod %s/%s: ResourceClaim %s: %w", pod.Namespace, pod.Name, name, err))
				continue
			}
			for _, d := range claim.Status.Devices {
				if d.NetworkData == nil || d.NetworkData.InterfaceName == "" {
					continue
				}
				for j := range views[i].Interfaces {
					if iface := &views[i].Interfaces[j]; iface.Name == d.NetworkData.InterfaceName {
						iface.Device = d.Driver + "/" + d.Pool + "/" + d.Device
						iface.Claim = claim.Name
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// claimNames are the names of the ResourceClaims a pod uses: those its spec names, those the
// control plane made from its templates, and the one made for its extended resources.
func claimNames(pod *corev1.Pod) []string {
	generated := map[string]string{}
	for _, s := range pod.Status.ResourceClaimStatuses {
		if s.ResourceClaimName != nil {
			generated[s.Name] = *s.ResourceClaimName
		}
	}
	var names []string
	for _, pc := range pod.Spec.ResourceClaims {
		switch {
		case pc.ResourceClaimName != nil:
			names = append(names, *pc.ResourceClaimName)
		case generated[pc.Name] != "":
			names = append(names, generated[pc.Name])
		}
	}
	if ext := pod.Status.ExtendedResourceClaimStatus; ext != nil && ext.ResourceClaimName != "" {
		names = append(names, ext.ResourceClaimName)
	}
	return names
}
