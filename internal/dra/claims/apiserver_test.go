package claims

import (
	"context"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	resourcev1ac "k8s.io/client-go/applyconfigurations/resource/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/multinet/multinet/internal/status"
	"github.com/multinet/multinet/internal/testbed"
)

const nicDriver = "nic.multinet.io"

// TestDeviceStatusOnARealAPIServer resolves a pod's devices from the objects a real
// kube-apiserver stores (a claim named directly, another made from a template, allocated as
// the scheduler does), writes the builder's status.devices entries through the
// resourceclaims/status subresource, reads them back as written, and removes them again.
func TestDeviceStatusOnARealAPIServer(t *testing.T) {
	cp := testbed.StartControlPlane(t)
	cp.CreateNamespace(t, testNS)
	ctx := t.Context()
	c := cp.Client

	pod := createClaimingPod(ctx, t, c)
	createSlice(ctx, t, c, nicDriver)
	createSlice(ctx, t, c, "other.example.com")
	fast := createAllocatedClaim(ctx, t, c, pod, "fast-nics", "dev-1", "dev-0")
	createAllocatedClaim(ctx, t, c, pod, "web-0-bulk-x7k2p", "dev-5")

	obj, err := Gather(ctx, clientSource{c}, pod)
	if err != nil {
		t.Fatal(err)
	}
	if len(obj.Claims) != 2 || len(obj.Slices) != 1 {
		t.Fatalf("gathered %d claims and %d slices, want 2 and the one of %s", len(obj.Claims), len(obj.Slices), nicDriver)
	}
	devs, err := Resolve(obj, []Attachment{{"net/a1", "multinet.io/nic"}, {"net/a2", "multinet.io/nic"}, {"net/a3", "multinet.io/nic"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{devs[0].Name, devs[1].Name, devs[2].Name}; !reflect.DeepEqual(got, []string{"dev-1", "dev-0", "dev-5"}) {
		t.Fatalf("devices %v, want dev-1 dev-0 dev-5", got)
	}

	now := time.Now().Truncate(time.Second)
	for i, d := range devs[:2] {
		ifName := []string{"net1", "net2"}[i]
		addr := []string{"10.1.0.5/24", "2001:db8::5/64"}[i]
		r := hostDeviceResult(t, addr)
		r.Interfaces[0].Name = ifName
		st, err := DeviceStatus(Report{Device: d, Pod: "net/web-0", Generation: fast.Generation, Now: now,
			Network: status.Network{Name: "net/a", IfName: ifName, Result: r}})
		if err != nil {
			t.Fatal(err)
		}
		fast = writeDevices(ctx, t, c, fast, SetDeviceStatus(fast.Status.Devices, st))
		if got := entryOf(fast, d); got == nil || !reflect.DeepEqual(*got, st) {
			t.Fatalf("stored entry %+v, want %+v", got, st)
		}
	}
	if len(fast.Status.Devices) != 2 {
		t.Fatalf("%d entries stored, want 2", len(fast.Status.Devices))
	}

	fast = writeDevices(ctx, t, c, fast, RemoveDeviceStatus(fast.Status.Devices, devs[0]))
	if entryOf(fast, devs[0]) != nil || entryOf(fast, devs[1]) == nil {
		t.Errorf("after DEL of %s: entries %+v", devs[0].ID(), fast.Status.Devices)
	}
}

// TestAPIServerRejectsWhatTheBuilderAvoids shows the rules DeviceStatus keeps are enforced:
// kube-apiserver refuses a non-canonical address and a device the claim was not allocated.
func TestAPIServerRejectsWhatTheBuilderAvoids(t *testing.T) {
	cp := testbed.StartControlPlane(t)
	cp.CreateNamespace(t, testNS)
	ctx := t.Context()
	c := cp.Client
	pod := createClaimingPod(ctx, t, c)
	claim := createAllocatedClaim(ctx, t, c, pod, "fast-nics", "dev-1")

	tests := []struct {
		name  string
		entry resourcev1.AllocatedDeviceStatus
	}{
		{"an IPv6 address not in RFC 5952 form", resourcev1.AllocatedDeviceStatus{Driver: nicDriver, Pool: "node-a", Device: "dev-1",
			NetworkData: &resourcev1.NetworkDeviceData{IPs: []string{"2001:DB8:0::5/64"}}}},
		{"a device not allocated to the claim", resourcev1.AllocatedDeviceStatus{Driver: nicDriver, Pool: "node-a", Device: "dev-9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := claim.DeepCopy()
			cl.Status.Devices = []resourcev1.AllocatedDeviceStatus{tt.entry}
			_, err := c.ResourceV1().ResourceClaims(testNS).UpdateStatus(ctx, cl, metav1.UpdateOptions{})
			if !apierrors.IsInvalid(err) {
				t.Fatalf("error %v, want Invalid", err)
			}
			t.Log(err)
		})
	}
}

// createClaimingPod creates pod net/web-0 with claim "fast" (fast-nics) and claim "bulk"
// from a template, whose generated name it records in the pod's status as the resource
// claim controller does.
func createClaimingPod(ctx context.Context, t *testing.T, c kubernetes.Interface) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "web-0"},
		Spec: corev1.PodSpec{
			NodeName:       "node-a",
			ResourceClaims: []corev1.PodResourceClaim{direct("fast", "fast-nics"), fromTemplate("bulk")},
			Containers: []corev1.Container{{Name: "app", Image: "pause",
				Resources: corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "fast"}, {Name: "bulk"}}}}},
		},
	}
	created, err := c.CoreV1().Pods(testNS).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	generated(created, "bulk", ptr("web-0-bulk-x7k2p"))
	updated, err := c.CoreV1().Pods(testNS).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return updated
}

// createSlice publishes three NICs of node-a for driver, as this project's driver does.
func createSlice(ctx context.Context, t *testing.T, c kubernetes.Interface, driver string) {
	t.Helper()
	s := slice(driver, "node-a", 1,
		nic("dev-0", "multinet.io/nic", "mn-dev0"), nic("dev-1", "multinet.io/nic", "mn-dev1"),
		nic("dev-5", "multinet.io/nic", "mn-dev5"))
	if _, err := c.ResourceV1().ResourceSlices().Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// clientSource reads from the API server itself.
type clientSource struct{ c kubernetes.Interface }

func (s clientSource) ResourceClaim(ctx context.Context, ns, name string) (*resourcev1.ResourceClaim, error) {
	return s.c.ResourceV1().ResourceClaims(ns).Get(ctx, name, metav1.GetOptions{})
}

func (s clientSource) ResourceSlices(ctx context.Context, driver string) ([]*resourcev1.ResourceSlice, error) {
	list, err := s.c.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{FieldSelector: "spec.driver=" + driver})
	if err != nil {
		return nil, err
	}
	out := make([]*resourcev1.ResourceSlice, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}

// createAllocatedClaim creates a claim for len(devices) NICs, then allocates it those of
// node-a and reserves it for the pod, in one status write, as the scheduler does.
func createAllocatedClaim(ctx context.Context, t *testing.T, c kubernetes.Interface, pod *corev1.Pod, name string, devices ...string) *resourcev1.ResourceClaim {
	t.Helper()
	claim := &resourcev1.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
			Name: "nic",
			Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: nicDriver,
				AllocationMode: resourcev1.DeviceAllocationModeExactCount, Count: int64(len(devices))},
		}}}},
	}
	created, err := c.ResourceV1().ResourceClaims(testNS).Create(ctx, claim, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alloc := &resourcev1.AllocationResult{NodeSelector: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
		MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"node-a"}}},
	}}}}
	for _, d := range devices {
		alloc.Devices.Results = append(alloc.Devices.Results,
			resourcev1.DeviceRequestAllocationResult{Request: "nic", Driver: nicDriver, Pool: "node-a", Device: d})
	}
	created.Status.Allocation = alloc
	created.Status.ReservedFor = []resourcev1.ResourceClaimConsumerReference{{Resource: "pods", Name: pod.Name, UID: pod.UID}}
	allocated, err := c.ResourceV1().ResourceClaims(testNS).UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return allocated
}

// writeDevices writes the claim's status.devices through resourceclaims/status and returns
// the claim read back.
func writeDevices(ctx context.Context, t *testing.T, c kubernetes.Interface, claim *resourcev1.ResourceClaim, devices []resourcev1.AllocatedDeviceStatus) *resourcev1.ResourceClaim {
	t.Helper()
	cl := claim.DeepCopy()
	cl.Status.Devices = devices
	if _, err := c.ResourceV1().ResourceClaims(testNS).UpdateStatus(ctx, cl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := c.ResourceV1().ResourceClaims(testNS).Get(ctx, claim.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func entryOf(claim *resourcev1.ResourceClaim, d Device) *resourcev1.AllocatedDeviceStatus {
	for i, e := range claim.Status.Devices {
		if e.Driver == d.Driver && e.Pool == d.Pool && e.Device == d.Name {
			return &claim.Status.Devices[i]
		}
	}
	return nil
}

// TestStatusApplySharesEntriesWithTheDriver shows server-side apply on kube-apiserver: the
// driver's condition and data in an entry survive multinet's apply, and multinet's next
// apply without a device takes back only what multinet had set.
func TestStatusApplySharesEntriesWithTheDriver(t *testing.T) {
	cp := testbed.StartControlPlane(t)
	cp.CreateNamespace(t, testNS)
	ctx := t.Context()
	c := cp.Client
	pod := createClaimingPod(ctx, t, c)
	claim := createAllocatedClaim(ctx, t, c, pod, "fast-nics", "dev-1", "dev-0")
	ref := ClaimRef{Namespace: testNS, Name: claim.Name, UID: claim.UID}
	now := time.Now().Truncate(time.Second)

	vendor := resourcev1.AllocatedDeviceStatus{Driver: nicDriver, Pool: "node-a", Device: "dev-1",
		Conditions: []metav1.Condition{{Type: "VendorConfigured", Status: "True", Reason: "Done", LastTransitionTime: metav1.NewTime(now)}},
		Data:       &runtime.RawExtension{Raw: []byte(`{"firmware":"1.2"}`)}}
	apply(ctx, t, c, "nic-driver", StatusApply(ref, vendor))

	var ours []resourcev1.AllocatedDeviceStatus
	for i, dev := range []string{"dev-1", "dev-0"} {
		ifName := []string{"net1", "net2"}[i]
		r := hostDeviceResult(t, []string{"10.1.0.5/24", "10.1.0.6/24"}[i])
		r.Interfaces[0].Name = ifName
		st, err := DeviceStatus(Report{Device: Device{Driver: nicDriver, Pool: "node-a", Name: dev}, Pod: "net/web-0",
			Generation: claim.Generation, Now: now, Network: status.Network{Name: "net/a", IfName: ifName, Result: r}})
		if err != nil {
			t.Fatal(err)
		}
		ours = append(ours, st)
	}
	got := apply(ctx, t, c, "multinetd", StatusApply(ref, ours...))
	if want := []string{"VendorConfigured", "Ready", "NetworkReady"}; !reflect.DeepEqual(conditionTypes(got, "dev-1"), want) {
		t.Errorf("dev-1 conditions %v, want %v", conditionTypes(got, "dev-1"), want)
	}
	if e := entryOf(got, Device{Driver: nicDriver, Pool: "node-a", Name: "dev-1"}); e.Data == nil || e.NetworkData == nil {
		t.Errorf("dev-1 lost the driver's data or has no network data: %+v", e)
	}

	got = apply(ctx, t, c, "multinetd", StatusApply(ref, ours[1]))
	e := entryOf(got, Device{Driver: nicDriver, Pool: "node-a", Name: "dev-1"})
	if e == nil || !reflect.DeepEqual(conditionTypes(got, "dev-1"), []string{"VendorConfigured"}) || e.NetworkData != nil || e.Data == nil {
		t.Errorf("after dev-1's DEL: %+v, want the driver's condition and data only", e)
	}

	got = apply(ctx, t, c, "multinetd", StatusApply(ref))
	if entryOf(got, Device{Driver: nicDriver, Pool: "node-a", Name: "dev-0"}) != nil || len(got.Status.Devices) != 1 {
		t.Errorf("after every DEL: entries %+v, want the driver's only", got.Status.Devices)
	}
}

func apply(ctx context.Context, t *testing.T, c kubernetes.Interface, manager string, a *resourcev1ac.ResourceClaimApplyConfiguration) *resourcev1.ResourceClaim {
	t.Helper()
	got, err := c.ResourceV1().ResourceClaims(testNS).ApplyStatus(ctx, a, metav1.ApplyOptions{FieldManager: manager, Force: true})
	if err != nil {
		t.Fatalf("apply as %s: %v", manager, err)
	}
	return got
}

func conditionTypes(claim *resourcev1.ResourceClaim, device string) []string {
	var out []string
	for _, e := range claim.Status.Devices {
		if e.Device != device {
			continue
		}
		for _, c := range e.Conditions {
			out = append(out, c.Type)
		}
	}
	return out
}
