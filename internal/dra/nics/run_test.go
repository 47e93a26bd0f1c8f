package nics

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"github.com/multinet/multinet/internal/testbed"
)

// driverUnderTest is Run on a real apiserver, with its sockets and state in a temp dir.
type driverUnderTest struct {
	cp        *testbed.ControlPlane
	registrar string
	plugin    string
	state     string
}

func startDriver(t *testing.T, cfg Config) *driverUnderTest {
	t.Helper()
	cp := testbed.StartControlPlane(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}}
	if _, err := cp.Client.CoreV1().Nodes().Create(t.Context(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "mdra") // short: socket paths have a length limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	d := &driverUnderTest{cp: cp, registrar: filepath.Join(dir, "registry"), plugin: filepath.Join(dir, "plugin"), state: filepath.Join(dir, "state")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Config: cfg, NodeName: testNode, Client: cp.Client, StateDir: d.state,
			RegistrarDir: d.registrar, PluginDataDir: d.plugin, Rescan: time.Hour})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return d
}

// published returns the devices of the node's slices by name, once want(devices) holds.
func (d *driverUnderTest) waitSlices(t *testing.T, what string, want func(map[string]resourceapi.Device) bool) map[string]resourceapi.Device {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := d.cp.Client.ResourceV1().ResourceSlices().List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		devs := map[string]resourceapi.Device{}
		for _, s := range list.Items {
			if s.Spec.Driver == DefaultDriver && s.Spec.NodeName != nil && *s.Spec.NodeName == testNode && s.Spec.Pool.Name == testNode {
				for _, dev := range s.Spec.Devices {
					devs[dev.Name] = dev
				}
			}
		}
		if want(devs) {
			return devs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s; published %v", what, keys(devs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func keys(m map[string]resourceapi.Device) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func exactly(names ...string) func(map[string]resourceapi.Device) bool {
	return func(devs map[string]resourceapi.Device) bool { return reflect.DeepEqual(keys(devs), names) }
}

func TestRunPublishesHostNICs(t *testing.T) {
	needRoot(t)
	nic0 := addVeth(t, testPrefix+"nic0", testPrefix+"peer0")
	d := startDriver(t, Config{Include: []string{testPrefix + "nic*"}, ResourceName: "example.com/nic"})

	devs := d.waitSlices(t, "nic0 is published", exactly(testPrefix+"nic0"))
	attrs := devs[testPrefix+"nic0"].Attributes
	if s := attrs[AttrMAC].StringValue; s == nil || *s != nic0.Attrs().HardwareAddr.String() {
		t.Errorf("mac attribute %v, kernel says %s", s, nic0.Attrs().HardwareAddr)
	}
	if s := attrs[AttrResourceName].StringValue; s == nil || *s != "example.com/nic" {
		t.Errorf("resourceName attribute %v", s)
	}
	if i := attrs[AttrMTU].IntValue; i == nil || *i != 1400 {
		t.Errorf("mtu attribute %v", i)
	}

	addVeth(t, testPrefix+"nic1", testPrefix+"peer1")
	d.waitSlices(t, "a new link is published", exactly(testPrefix+"nic0", testPrefix+"nic1"))
	delLink(testPrefix + "nic1")
	d.waitSlices(t, "a deleted link is withdrawn", exactly(testPrefix+"nic0"))
}

func dial(t *testing.T, socket string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestKubeletPrepareKeepsMovedNICPublished speaks to the driver's sockets as the kubelet does:
// registration, then prepare, the link leaving the host, unprepare.
func TestKubeletPrepareKeepsMovedNICPublished(t *testing.T) {
	needRoot(t)
	addVeth(t, testPrefix+"nic0", testPrefix+"peer0")
	addVeth(t, testPrefix+"nic1", testPrefix+"peer1")
	d := startDriver(t, Config{Include: []string{testPrefix + "nic*"}})
	d.waitSlices(t, "both NICs are published", exactly(testPrefix+"nic0", testPrefix+"nic1"))

	info, err := registerapi.NewRegistrationClient(dial(t, filepath.Join(d.registrar, DefaultDriver+"-reg.sock"))).GetInfo(t.Context(), &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != registerapi.DRAPlugin || info.Name != DefaultDriver || info.Endpoint != filepath.Join(d.plugin, "dra.sock") {
		t.Fatalf("registration info %+v", info)
	}

	claim := allocatedClaim(t, d.cp.Client, testPrefix+"nic1")
	dra := drapb.NewDRAPluginClient(dial(t, info.Endpoint))
	req := &drapb.NodePrepareResourcesRequest{Claims: []*drapb.Claim{{Namespace: claim.Namespace, Name: claim.Name, Uid: string(claim.UID)}}}
	for range 2 { // the kubelet may ask twice
		resp, err := dra.NodePrepareResources(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		got := resp.Claims[string(claim.UID)]
		if got == nil || got.Error != "" || len(got.Devices) != 1 || got.Devices[0].DeviceName != testPrefix+"nic1" || len(got.Devices[0].CdiDeviceIds) != 0 {
			t.Fatalf("prepare: %v", got)
		}
	}

	delLink(testPrefix + "nic1") // as if the host-device delegate moved it into the pod
	addVeth(t, testPrefix+"nic2", testPrefix+"peer2")
	d.waitSlices(t, "the prepared NIC stays published", exactly(testPrefix+"nic0", testPrefix+"nic1", testPrefix+"nic2"))

	unreq := &drapb.NodeUnprepareResourcesRequest{Claims: req.Claims}
	for range 2 {
		resp, err := dra.NodeUnprepareResources(t.Context(), unreq)
		if err != nil || resp.Claims[string(claim.UID)] == nil || resp.Claims[string(claim.UID)].Error != "" {
			t.Fatalf("unprepare: %v, %v", resp, err)
		}
	}
	d.waitSlices(t, "the unprepared NIC not on the host is withdrawn", exactly(testPrefix+"nic0", testPrefix+"nic2"))
	state, err := LoadState(d.state)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := state.Get(claim.UID); ok {
		t.Fatal("the state file still holds the unprepared claim")
	}
}

// allocatedClaim creates a claim and writes the allocation of device to its status, as the
// scheduler would.
func allocatedClaim(t *testing.T, client kubernetes.Interface, device string) *resourceapi.ResourceClaim {
	t.Helper()
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "net"}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	claim := &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "net", Name: "nic"},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{
			{Name: "nic", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: DefaultDriver}},
		}}},
	}
	claim, err := client.ResourceV1().ResourceClaims("net").Create(ctx, claim, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	claim.Status.Allocation = &resourceapi.AllocationResult{Devices: resourceapi.DeviceAllocationResult{Results: []resourceapi.DeviceRequestAllocationResult{
		{Request: "nic", Driver: DefaultDriver, Pool: testNode, Device: device},
	}}}
	claim, err = client.ResourceV1().ResourceClaims("net").UpdateStatus(ctx, claim, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return claim
}
