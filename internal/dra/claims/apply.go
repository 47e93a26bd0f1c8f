package claims

import (
	resourcev1 "k8s.io/api/resource/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	resourcev1ac "k8s.io/client-go/applyconfigurations/resource/v1"
)

// StatusApply returns a server-side apply of a claim's status.devices holding entries, and
// nothing else: applied by one field manager, it owns those entries' conditions and
// networkData only, so the driver's own conditions and data in the same entries stay, and an
// entry left out of a later apply (the device detached) loses what the manager had set.
func StatusApply(claim ClaimRef, entries ...resourcev1.AllocatedDeviceStatus) *resourcev1ac.ResourceClaimApplyConfiguration {
	status := resourcev1ac.ResourceClaimStatus()
	for _, e := range entries {
		status.WithDevices(entryApply(e))
	}
	return resourcev1ac.ResourceClaim(claim.Name, claim.Namespace).WithStatus(status)
}

func entryApply(e resourcev1.AllocatedDeviceStatus) *resourcev1ac.AllocatedDeviceStatusApplyConfiguration {
	a := resourcev1ac.AllocatedDeviceStatus().WithDriver(e.Driver).WithPool(e.Pool).WithDevice(e.Device)
	if e.ShareID != nil {
		a.WithShareID(*e.ShareID)
	}
	for _, c := range e.Conditions {
		a.WithConditions(metav1ac.Condition().WithType(c.Type).WithStatus(c.Status).WithReason(c.Reason).
			WithMessage(c.Message).WithObservedGeneration(c.ObservedGeneration).WithLastTransitionTime(c.LastTransitionTime))
	}
	if nd := e.NetworkData; nd != nil {
		n := resourcev1ac.NetworkDeviceData()
		if nd.InterfaceName != "" {
			n.WithInterfaceName(nd.InterfaceName)
		}
		if len(nd.IPs) > 0 {
			n.WithIPs(nd.IPs...)
		}
		if nd.HardwareAddress != "" {
			n.WithHardwareAddress(nd.HardwareAddress)
		}
		a.WithNetworkData(n)
	}
	if e.Data != nil {
		a.WithData(*e.Data)
	}
	return a
}
