package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/cli"
	"github.com/multinet/multinet/internal/selection"
	"github.com/multinet/multinet/internal/testbed"
)

// testDevices: a pod whose claim reports a device attached as its net1 (what multinetd
// writes for a device-backed network) shows it in status -o json (device, claim) and in the
// DEVICE column of -o wide; its other interfaces, and pods without claims, show none.
func testDevices(t *testing.T, w *policyWorld, k *kubectl) {
	ctx := testbed.Ctx(t)
	claims := w.cp.Client.ResourceV1().ResourceClaims(w.ns)
	claim, err := claims.Create(ctx, &resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Name: "fabric-nic"},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{
			{Name: "nic", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: "nic.multinet.io"}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	claim.Status.Allocation = &resourcev1.AllocationResult{Devices: resourcev1.DeviceAllocationResult{
		Results: []resourcev1.DeviceRequestAllocationResult{{Request: "nic", Driver: "nic.multinet.io", Pool: "node-a", Device: "mnnic0"}}}}
	claim.Status.Devices = []resourcev1.AllocatedDeviceStatus{{Driver: "nic.multinet.io", Pool: "node-a", Device: "mnnic0",
		NetworkData: &resourcev1.NetworkDeviceData{InterfaceName: "net1", IPs: []string{"10.20.9.2/24"}}}}
	if _, err := claims.UpdateStatus(ctx, claim, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := json.Marshal([]nadv1.NetworkStatus{{Name: "cluster", Interface: "eth0", IPs: []string{"10.244.0.20"}, Default: true},
		{Name: "p/fabric", Interface: "net1", IPs: []string{"10.20.9.2"}}})
	if err != nil {
		t.Fatal(err)
	}
	name := "fabric-nic"
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "nicpod", Namespace: w.ns, Labels: map[string]string{"app": "nic"},
		Annotations: map[string]string{selection.NetworksAnnotation: "fabric", nadv1.NetworkStatusAnnot: string(st)}},
		Spec: corev1.PodSpec{NodeName: testbed.NodeName, Containers: []corev1.Container{{Name: "c", Image: "pause"}},
			ResourceClaims: []corev1.PodResourceClaim{{Name: "nic", ResourceClaimName: &name}}}}
	if _, err := w.cp.Client.CoreV1().Pods(w.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var views []cli.PodNetworks
	if err := json.Unmarshal([]byte(k.want(0, nil, "status", "-o", "json")), &views); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range views {
		for _, i := range v.Interfaces {
			want := ""
			if v.Name == "nicpod" && i.Name == "net1" {
				found, want = true, "nic.multinet.io/node-a/mnnic0"
			}
			if i.Device != want || (want != "" && i.Claim != "fabric-nic") || (want == "" && i.Claim != "") {
				t.Errorf("status -o json: %s %s device %q claim %q, want %q", v.Name, i.Name, i.Device, i.Claim, want)
			}
		}
	}
	if !found {
		t.Fatalf("status -o json has no nicpod net1:\n%+v", views)
	}
	out := k.want(0, []string{"DEVICE"}, "status", "-o", "wide")
	cell := "(no row)"
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[0] == "nicpod" && f[1] == "net1" {
			cell = f[len(f)-2] // DEVICE, before POLICIES
		}
	}
	if cell != "nic.multinet.io/node-a/mnnic0" {
		t.Errorf("status -o wide: nicpod net1 DEVICE %q, want nic.multinet.io/node-a/mnnic0:\n%s", cell, out)
	}
}
