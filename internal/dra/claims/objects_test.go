package claims

import (
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Builders of the API objects the tests resolve.

const (
	testNS     = "net"
	testPodUID = types.UID("pod-uid-1")
	sriov      = "sriov.example.com"
	dranet     = "dra.net"
)

func ptr[T any](v T) *T { return &v }

// podWith returns pod net/web-0 with the given claims in its spec.
func podWith(claims ...corev1.PodResourceClaim) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "web-0", UID: testPodUID},
		Spec:       corev1.PodSpec{ResourceClaims: claims},
	}
}

// generated records in the pod's status the claim name made from a template.
func generated(pod *corev1.Pod, podClaim string, claim *string) *corev1.Pod {
	pod.Status.ResourceClaimStatuses = append(pod.Status.ResourceClaimStatuses,
		corev1.PodResourceClaimStatus{Name: podClaim, ResourceClaimName: claim})
	return pod
}

func direct(podClaim, claim string) corev1.PodResourceClaim {
	return corev1.PodResourceClaim{Name: podClaim, ResourceClaimName: ptr(claim)}
}

func fromTemplate(podClaim string) corev1.PodResourceClaim {
	return corev1.PodResourceClaim{Name: podClaim, ResourceClaimTemplateName: ptr("nics")}
}

// result is one allocated device: "driver/pool/device" of request.
type result struct{ request, driver, pool, device string }

// allocated returns a claim of the test namespace, allocated the results and reserved for
// the test pod.
func allocated(name string, results ...result) *resourcev1.ResourceClaim {
	c := pending(name)
	c.Status.Allocation = &resourcev1.AllocationResult{}
	for _, r := range results {
		c.Status.Allocation.Devices.Results = append(c.Status.Allocation.Devices.Results,
			resourcev1.DeviceRequestAllocationResult{Request: r.request, Driver: r.driver, Pool: r.pool, Device: r.device})
	}
	c.Status.ReservedFor = []resourcev1.ResourceClaimConsumerReference{{Resource: "pods", Name: "web-0", UID: testPodUID}}
	return c
}

// pending returns a claim not allocated yet.
func pending(name string) *resourcev1.ResourceClaim {
	return &resourcev1.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name, UID: types.UID(name + "-uid")},
	}
}

func slice(driver, pool string, generation int64, devices ...resourcev1.Device) *resourcev1.ResourceSlice {
	return &resourcev1.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: driver + "-" + pool},
		Spec: resourcev1.ResourceSliceSpec{
			Driver: driver, Pool: resourcev1.ResourcePool{Name: pool, Generation: generation, ResourceSliceCount: 1},
			NodeName: ptr("node-a"), Devices: devices,
		},
	}
}

// device returns a device with string attributes.
func device(name string, attrs map[string]string) resourcev1.Device {
	d := resourcev1.Device{Name: name, Attributes: map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{}}
	for k, v := range attrs {
		d.Attributes[resourcev1.QualifiedName(k)] = resourcev1.DeviceAttribute{StringValue: ptr(v)}
	}
	return d
}

// nic returns a device of resourceName with its interface name, as this project's driver
// publishes it.
func nic(name, resourceName, ifName string) resourcev1.Device {
	return device(name, map[string]string{string(AttrResourceName): resourceName, "ifName": ifName})
}
