package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/dra/claims"
	"github.com/multinet/multinet/internal/testbed"
)

// The DRA objects the test publishes and allocates, as the NIC driver and the scheduler would.
const (
	nicDriver    = "nic.multinet.io"
	nicResource  = "multinet.io/veth" // the NADs' resourceName and the devices' attribute
	resourceAnno = "k8s.v1.cni.cncf.io/resourceName"
)

// hostNIC is a test "NIC": one end of a veth pair on the host (the other end stays there),
// published as a device of the node's pool.
type hostNIC struct {
	Device string // its name in the ResourceSlice
	IfName string
	MAC    string
	PCI    string // a PCI address published for it (a veth has none: the driver's word is taken)
}

// newHostNIC creates the veth pair name/peer on the host, removed at cleanup wherever the
// test left name (in a pod's netns, deleting the peer removes both).
func newHostNIC(t *testing.T, device, name, peer string) hostNIC {
	t.Helper()
	t.Cleanup(func() { testbed.DeleteLink(peer); testbed.DeleteLink(name) })
	if out, err := exec.Command("ip", "link", "add", name, "type", "veth", "peer", "name", peer).CombinedOutput(); err != nil {
		t.Fatalf("ip link add %s: %v %s", name, err, out)
	}
	mac := macIn(t, nil, name)
	if mac == "" {
		t.Fatalf("veth %s has no MAC", name)
	}
	return hostNIC{Device: device, IfName: name, MAC: mac}
}

// macIn is the MAC of ifname in netns (the host's when netns is nil), "" when it has no such
// link.
func macIn(t *testing.T, netns ns.NetNS, ifname string) string {
	t.Helper()
	var mac string
	find := func(ns.NetNS) error {
		if l, err := netlinksafe.LinkByName(ifname); err == nil {
			mac = l.Attrs().HardwareAddr.String()
		}
		return nil
	}
	if netns == nil {
		_ = find(nil)
		return mac
	}
	if err := netns.Do(find); err != nil {
		t.Fatal(err)
	}
	return mac
}

// onHost fails the test unless nic is on the host under its own name and MAC.
func (n hostNIC) onHost(t *testing.T, when string) {
	t.Helper()
	if got := macIn(t, nil, n.IfName); got != n.MAC {
		t.Errorf("%s: host link %s has MAC %q, want %s (the NIC back under its own name)", when, n.IfName, got, n.MAC)
	}
}

// publishNICs creates count NICs and one ResourceSlice of the node's pool listing them, with
// the attributes the NIC driver publishes (ifName, mac, resourceName; pciAddress for those
// pci names).
func publishNICs(t *testing.T, cp *testbed.ControlPlane, count int, pci map[int]string) []hostNIC {
	t.Helper()
	id := testbed.RandomID()
	nics := make([]hostNIC, count)
	devices := make([]resourcev1.Device, count)
	for i := range nics {
		nics[i] = newHostNIC(t, fmt.Sprintf("nic-%d", i), fmt.Sprintf("mnt-dra%s%d", id, i), fmt.Sprintf("mnt-drp%s%d", id, i))
		devices[i] = resourcev1.Device{Name: nics[i].Device, Attributes: map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{
			"ifName":                {StringValue: &nics[i].IfName},
			"mac":                   {StringValue: &nics[i].MAC},
			claims.AttrResourceName: {StringValue: ptrTo(nicResource)},
		}}
		if addr, ok := pci[i]; ok {
			nics[i].PCI = addr
			devices[i].Attributes["pciAddress"] = resourcev1.DeviceAttribute{StringValue: ptrTo(addr)}
		}
	}
	slice := &resourcev1.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "mnt-dra-" + id},
		Spec: resourcev1.ResourceSliceSpec{Driver: nicDriver, NodeName: ptrTo(testbed.NodeName), Devices: devices,
			Pool: resourcev1.ResourcePool{Name: testbed.NodeName, Generation: 1, ResourceSliceCount: 1}},
	}
	if _, err := cp.Client.ResourceV1().ResourceSlices().Create(testbed.Ctx(t), slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return nics
}

func ptrTo[T any](v T) *T { return &v }

// deviceNAD creates NAD name annotated with resourceName nicResource: host-device (its
// device left for the claim to give, unless device is set) with ipam.
func (e *env) deviceNAD(t *testing.T, name, device, ipam string) {
	t.Helper()
	dev := ""
	if device != "" {
		dev = fmt.Sprintf(`"device":%q,`, device)
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[{"type":"host-device",%s"ipam":%s}]}`, name, dev, ipam)
	nad := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Annotations: map[string]string{resourceAnno: nicResource}},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: conf},
	}
	if _, err := e.CP.NADClient.K8sCniCncfIoV1().NetworkAttachmentDefinitions(e.ns).Create(testbed.Ctx(t), nad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// staticIPAM and hostLocalIPAM are the ipam sections of deviceNAD.
func staticIPAM(cidr string) string {
	return fmt.Sprintf(`{"type":"static","addresses":[{"address":%q}]}`, cidr)
}

func (e *env) hostLocalIPAM(subnet string) string {
	return fmt.Sprintf(`{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]]}`, e.IPAMDir, subnet)
}

// podClaim is one entry of a pod's spec.resourceClaims: a claim named directly, or made from
// a template, under the name the control plane generated (generated).
type podClaim struct {
	name, claim string
	template    bool
}

// claimingSandbox creates a pod whose containers use claims, records the generated names of
// its template claims in its status (as the resource claim controller does), and makes
// its netns.
func (e *env) claimingSandbox(t *testing.T, name, annotation string, pcs ...podClaim) *testbed.Sandbox {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: corev1.PodSpec{NodeName: testbed.NodeName, AutomountServiceAccountToken: ptrTo(false),
			Containers: []corev1.Container{{Name: "pause", Image: "pause"}}},
	}
	if annotation != "" {
		pod.Annotations = map[string]string{networks: annotation}
	}
	var generated []corev1.PodResourceClaimStatus
	for _, pc := range pcs {
		c := corev1.PodResourceClaim{Name: pc.name, ResourceClaimName: ptrTo(pc.claim)}
		if pc.template {
			c = corev1.PodResourceClaim{Name: pc.name, ResourceClaimTemplateName: ptrTo("nics")}
			generated = append(generated, corev1.PodResourceClaimStatus{Name: pc.name, ResourceClaimName: ptrTo(pc.claim)})
		}
		pod.Spec.ResourceClaims = append(pod.Spec.ResourceClaims, c)
		pod.Spec.Containers[0].Resources.Claims = append(pod.Spec.Containers[0].Resources.Claims, corev1.ResourceClaim{Name: pc.name})
	}
	pods := e.CP.Client.CoreV1().Pods(e.ns)
	created, err := pods.Create(testbed.Ctx(t), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(generated) > 0 {
		created.Status.ResourceClaimStatuses = generated
		if created, err = pods.UpdateStatus(testbed.Ctx(t), created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return &testbed.Sandbox{Pod: created, Netns: testbed.NewNetNS(t), ID: "c" + testbed.RandomID() + testbed.RandomID()}
}

// createClaim creates a claim for count NICs of the class, not allocated yet.
func (e *env) createClaim(t *testing.T, name string, count int) *resourcev1.ResourceClaim {
	t.Helper()
	claim := &resourcev1.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
			Name: "nic", Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: nicDriver,
				AllocationMode: resourcev1.DeviceAllocationModeExactCount, Count: int64(count)},
		}}}},
	}
	created, err := e.CP.Client.ResourceV1().ResourceClaims(e.ns).Create(testbed.Ctx(t), claim, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return created
}

// allocate writes the claim's allocation (nics, in that order, on this node) and reserves it
// for the pod, in one status write, as the scheduler does.
func (e *env) allocate(t *testing.T, claim *resourcev1.ResourceClaim, pod *corev1.Pod, nics ...hostNIC) {
	t.Helper()
	alloc := &resourcev1.AllocationResult{NodeSelector: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
		MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{testbed.NodeName}}},
	}}}}
	for _, n := range nics {
		alloc.Devices.Results = append(alloc.Devices.Results,
			resourcev1.DeviceRequestAllocationResult{Request: "nic", Driver: nicDriver, Pool: testbed.NodeName, Device: n.Device})
	}
	claim = claim.DeepCopy()
	claim.Status.Allocation = alloc
	claim.Status.ReservedFor = []resourcev1.ResourceClaimConsumerReference{{Resource: "pods", Name: pod.Name, UID: pod.UID}}
	if _, err := e.CP.Client.ResourceV1().ResourceClaims(e.ns).UpdateStatus(testbed.Ctx(t), claim, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// allocatedClaim creates a claim and allocates it nics for the pod.
func (e *env) allocatedClaim(t *testing.T, name string, pod *corev1.Pod, nics ...hostNIC) {
	t.Helper()
	e.allocate(t, e.createClaim(t, name, len(nics)), pod, nics...)
}

// ipamFor is an ipam section for a NAD of env e.
type ipamFor func(e *env) string

// hostLocal is host-local ipam on subnet (of the env's own data dir).
func hostLocal(subnet string) ipamFor { return func(e *env) string { return e.hostLocalIPAM(subnet) } }

// attachedNIC is a new env with NAD "dev" (host-device, ipam), and its sandbox of pod "p"
// (networks annotation annotation) whose claim "p-nic" holds nic, ADDed.
func attachedNIC(t *testing.T, cp *testbed.ControlPlane, nic hostNIC, annotation string, ipam ipamFor) (*env, *testbed.Sandbox) {
	t.Helper()
	e := newEnv(t, cp)
	e.deviceNAD(t, "dev", "", ipam(e))
	sb := e.claimingSandbox(t, "p", annotation, podClaim{name: "nic", claim: "p-nic"})
	e.allocatedClaim(t, "p-nic", sb.Pod, nic)
	e.MustAdd(t, sb)
	return e, sb
}

// claimDevices reads the claim's status.devices.
func (e *env) claimDevices(t *testing.T, name string) []resourcev1.AllocatedDeviceStatus {
	t.Helper()
	c, err := e.CP.Client.ResourceV1().ResourceClaims(e.ns).Get(testbed.Ctx(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c.Status.Devices
}

// wantDeviceEntry checks entry reports nic attached as the interface st describes, with
// conditions Ready and NetworkReady true.
func wantDeviceEntry(t *testing.T, entry resourcev1.AllocatedDeviceStatus, nic hostNIC, st nadv1.NetworkStatus) {
	t.Helper()
	if entry.Driver != nicDriver || entry.Pool != testbed.NodeName || entry.Device != nic.Device {
		t.Errorf("claim entry for %s/%s/%s, want %s", entry.Driver, entry.Pool, entry.Device, nic.Device)
	}
	for _, typ := range []string{claims.ConditionReady, claims.ConditionNetworkReady} {
		if c := findCondition(entry.Conditions, typ); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("claim entry of %s: condition %s = %+v, want True", nic.Device, typ, c)
		}
	}
	nd := entry.NetworkData
	if nd == nil {
		t.Fatalf("claim entry of %s has no networkData", nic.Device)
	}
	var ips []string
	for _, ip := range nd.IPs {
		ips = append(ips, strings.Split(ip, "/")[0])
	}
	if nd.InterfaceName != st.Interface || nd.HardwareAddress != st.Mac || !reflect.DeepEqual(ips, st.IPs) || nd.HardwareAddress != nic.MAC {
		t.Errorf("claim networkData %+v, network-status %s %v %s, NIC MAC %s: want the same interface", *nd, st.Interface, st.IPs, st.Mac, nic.MAC)
	}
}

func findCondition(cs []metav1.Condition, typ string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == typ {
			return &cs[i]
		}
	}
	return nil
}

// statusByIf waits for network-status with n entries and indexes it by interface.
func (e *env) statusByIf(t *testing.T, sb *testbed.Sandbox, n int) map[string]nadv1.NetworkStatus {
	t.Helper()
	out := map[string]nadv1.NetworkStatus{}
	for _, s := range e.NetworkStatus(t, sb, n) {
		out[s.Interface] = s
	}
	return out
}

// wantDeviceInfo checks network-status carries the PCI device-info of nic, or none when it
// has no PCI address.
func wantDeviceInfo(t *testing.T, st nadv1.NetworkStatus, nic hostNIC) {
	t.Helper()
	di := st.DeviceInfo
	switch {
	case nic.PCI == "" && di != nil:
		t.Errorf("network-status of %s has device-info %+v, want none (%s has no PCI address)", st.Interface, *di, nic.Device)
	case nic.PCI != "" && (di == nil || di.Type != nadv1.DeviceInfoTypePCI || di.Pci == nil || di.Pci.PciAddress != nic.PCI):
		t.Errorf("network-status of %s has device-info %+v, want pci %s", st.Interface, di, nic.PCI)
	}
}

// warningWith waits for a Warning Event of reason on the pod and returns its message.
func (e *env) warningWith(t *testing.T, sb *testbed.Sandbox, reason string) string {
	t.Helper()
	for _, ev := range e.WaitEvent(t, sb.Pod, reason) {
		if ev.Reason == reason && ev.Type == corev1.EventTypeWarning {
			return ev.Message
		}
	}
	t.Fatalf("the %s Event on pod %s is not a Warning", reason, sb.Pod.Name)
	return ""
}

// recordOf reads the checkpoint record of sb.
func (e *env) recordOf(t *testing.T, sb *testbed.Sandbox) checkpoint.Sandbox {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.StateDir, "checkpoints", sb.ID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec checkpoint.Sandbox
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestDRA attaches device-backed networks from ResourceClaims on a real kube-apiserver:
// the test plays the NIC driver (a ResourceSlice of veth "NICs"), the scheduler (claim
// allocation) and the runtime (CNI ADD and DEL).
func TestDRA(t *testing.T) {
	testbed.RequireRoot(t)
	cp := testbed.StartControlPlane(t)
	nics := publishNICs(t, cp, 10, map[int]string{3: "0000:65:00.0"})
	t.Run("ClaimedNICMovedInReportedAndGivenBack", func(t *testing.T) { testClaimedNIC(t, cp, nics[0]) })
	t.Run("SeveralDevicesInClaimAndAllocationOrder", func(t *testing.T) { testSeveralDevices(t, cp, nics[1:4]) })
	t.Run("ClaimNotAllocatedFailsThenSucceeds", func(t *testing.T) { testClaimNotAllocated(t, cp, nics[4]) })
	t.Run("PodWithoutClaimsUsesNADDevice", func(t *testing.T) { testWithoutClaims(t, cp) })
	t.Run("HotplugOfDeviceNetworkRefused", func(t *testing.T) { testHotplugRefused(t, cp, nics[5]) })
	t.Run("Kill9AfterAddThenDel", func(t *testing.T) { testDRAKill9(t, cp, nics[6]) })
	t.Run("UnplugGivesNICBack", func(t *testing.T) { testDeviceUnplug(t, cp, nics[7]) })
	t.Run("DelAfterTheNICLeft", func(t *testing.T) { testDRADelAfterTheNICLeft(t, cp, nics[9]) })
	t.Run("DelWithAPIServerStopped", func(t *testing.T) { testDRADelAPIServerDown(t, cp, nics[8]) }) // last: it stops the API server
}

// testClaimedNIC: the claim's NIC goes into the pod as net1 with the NAD's static address;
// the claim's status entry, written by multinetd's field manager, says what network-status
// says; DEL gives the NIC back to the host under its name and clears the entry.
func testClaimedNIC(t *testing.T, cp *testbed.ControlPlane, nic hostNIC) {
	e, sb := attachedNIC(t, cp, nic, "dev", func(*env) string { return staticIPAM("10.30.0.5/24") })
	if got := testbed.Links(t, sb.Netns); !reflect.DeepEqual(got, []string{"eth0", "net1"}) {
		t.Fatalf("pod interfaces %v, want eth0 net1", got)
	}
	if got := macIn(t, sb.Netns, "net1"); got != nic.MAC || macIn(t, nil, nic.IfName) != "" {
		t.Fatalf("net1 has MAC %q, want the NIC's %s, gone from the host", got, nic.MAC)
	}
	if got := testbed.IPv4(t, sb.Netns, "net1").String(); got != "10.30.0.5" {
		t.Errorf("net1 address %s, want 10.30.0.5", got)
	}
	st := e.statusByIf(t, sb, 2)["net1"]
	if st.Name != e.ns+"/dev" || !reflect.DeepEqual(st.IPs, []string{"10.30.0.5"}) {
		t.Errorf("network-status of net1 %+v, want %s/dev with 10.30.0.5", st, e.ns)
	}
	wantDeviceInfo(t, st, nic)
	// The claim status is written before the ADD answers.
	devs := e.claimDevices(t, "p-nic")
	if len(devs) != 1 {
		t.Fatalf("claim status.devices %+v, want one entry", devs)
	}
	wantDeviceEntry(t, devs[0], nic, st)
	c, err := cp.Client.ResourceV1().ResourceClaims(e.ns).Get(testbed.Ctx(t), "p-nic", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !managedBy(c, "multinet.io/"+testbed.NodeName, "status") {
		t.Errorf("claim status not applied by field manager multinet.io/%s: %+v", testbed.NodeName, c.ManagedFields)
	}
	e.MustDel(t, sb)
	nic.onHost(t, "after DEL")
	if devs := e.claimDevices(t, "p-nic"); len(devs) != 0 {
		t.Errorf("claim status.devices after DEL: %+v, want none", devs)
	}
	e.assertClean(t)
}

func managedBy(obj metav1.Object, manager, subresource string) bool {
	for _, m := range obj.GetManagedFields() {
		if m.Manager == manager && m.Subresource == subresource && m.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

// testSeveralDevices: three attachments of one resourceName take three devices of two
// claims: the claims in the pod's order (the first made from a template), the devices in
// allocation order (not by name), the same way for the pod's next sandbox. The device that
// publishes a PCI address has it in network-status device-info.
func testSeveralDevices(t *testing.T, cp *testbed.ControlPlane, nics []hostNIC) {
	e := newEnv(t, cp)
	e.deviceNAD(t, "dev", "", e.hostLocalIPAM("10.31.0.0/24"))
	sb := e.claimingSandbox(t, "p", "dev,dev,dev",
		podClaim{name: "a", claim: "p-a-x7k2p", template: true}, podClaim{name: "b", claim: "p-b"})
	e.allocatedClaim(t, "p-a-x7k2p", sb.Pod, nics[2], nics[0])
	e.allocatedClaim(t, "p-b", sb.Pod, nics[1])
	want := map[string]hostNIC{"net1": nics[2], "net2": nics[0], "net3": nics[1]}
	for round := range 2 {
		if round == 1 {
			sb = &testbed.Sandbox{Pod: sb.Pod, Netns: testbed.NewNetNS(t), ID: "c" + testbed.RandomID() + testbed.RandomID()}
		}
		e.MustAdd(t, sb)
		st := e.statusByIf(t, sb, 4)
		for ifname, nic := range want {
			if got := macIn(t, sb.Netns, ifname); got != nic.MAC {
				t.Errorf("sandbox %d: %s has MAC %q, want %s's %s", round, ifname, got, nic.Device, nic.MAC)
			}
			wantDeviceInfo(t, st[ifname], nic)
		}
		a, b := e.claimDevices(t, "p-a-x7k2p"), e.claimDevices(t, "p-b")
		if len(a) != 2 || len(b) != 1 {
			t.Fatalf("claim entries %+v and %+v, want 2 and 1", a, b)
		}
		for _, entry := range append(a, b...) {
			ifname := entry.NetworkData.InterfaceName
			wantDeviceEntry(t, entry, want[ifname], st[ifname])
		}
		e.MustDel(t, sb)
		for _, nic := range nics {
			nic.onHost(t, fmt.Sprintf("sandbox %d DEL", round))
		}
		if a, b := e.claimDevices(t, "p-a-x7k2p"), e.claimDevices(t, "p-b"); len(a)+len(b) != 0 {
			t.Errorf("claim entries after DEL: %+v %+v", a, b)
		}
	}
	e.assertClean(t)
}

// testClaimNotAllocated: the ADD of a pod whose claim has no allocation yet fails with "try
// again", a DeviceNotResolved Warning naming the claim, and nothing done; once the claim
// is allocated, the retried ADD attaches the NIC.
func testClaimNotAllocated(t *testing.T, cp *testbed.ControlPlane, nic hostNIC) {
	e := newEnv(t, cp)
	e.deviceNAD(t, "dev", "", e.hostLocalIPAM("10.32.0.0/24"))
	sb := e.claimingSandbox(t, "p", "dev", podClaim{name: "nic", claim: "p-nic"})
	claim := e.createClaim(t, "p-nic", 1)
	_, err := e.Add(t, sb)
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != types.ErrTryAgainLater {
		t.Fatalf("ADD with the claim not allocated: %v, want a try-again error", err)
	}
	if msg := e.warningWith(t, sb, "DeviceNotResolved"); !strings.Contains(msg, e.ns+"/p-nic") {
		t.Errorf("DeviceNotResolved Event %q does not name claim %s/p-nic", msg, e.ns)
	}
	nic.onHost(t, "after the failed ADD")
	if got := testbed.Links(t, sb.Netns); len(got) != 0 {
		t.Errorf("pod interfaces after the failed ADD: %v, want none", got)
	}
	e.assertClean(t)

	e.allocate(t, claim, sb.Pod, nic)
	e.MustAdd(t, sb)
	if got := macIn(t, sb.Netns, "net1"); got != nic.MAC {
		t.Fatalf("net1 has MAC %q after the claim was allocated, want %s", got, nic.MAC)
	}
	if devs := e.claimDevices(t, "p-nic"); len(devs) != 1 {
		t.Errorf("claim status.devices %+v, want one entry", devs)
	}
	e.MustDel(t, sb)
	nic.onHost(t, "after DEL")
	e.assertClean(t)
}

// testWithoutClaims: a pod without ResourceClaims attaches a device-backed NAD as its config
// says (host-device naming its device), as before DRA: no device is resolved or recorded.
func testWithoutClaims(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	nic := newHostNIC(t, "", "mnt-drl"+e.ID, "mnt-drm"+e.ID)
	e.deviceNAD(t, "legacy", nic.IfName, staticIPAM("10.33.0.5/24"))
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "legacy"})
	e.MustAdd(t, sb)
	if got := macIn(t, sb.Netns, "net1"); got != nic.MAC {
		t.Fatalf("net1 has MAC %q, want the NAD's device %s (%s)", got, nic.IfName, nic.MAC)
	}
	if got := testbed.IPv4(t, sb.Netns, "net1").String(); got != "10.33.0.5" {
		t.Errorf("net1 address %s, want 10.33.0.5", got)
	}
	for _, a := range e.recordOf(t, sb).Attachments {
		if a.Meta["device"] != "" {
			t.Errorf("attachment %s records a device %s, want none (no claims)", a.IfName, a.Meta["device"])
		}
	}
	if n := e.logLines(t, sb, "device resolved"); n != 0 {
		t.Errorf("%d devices resolved for a pod without claims", n)
	}
	e.MustDel(t, sb)
	nic.onHost(t, "after DEL")
	e.assertClean(t)
}

// testHotplugRefused: an edit adding a device-backed network to a running pod (whose claim
// holds a device for it) is refused with a HotplugRefused Warning; nothing is plugged.
func testHotplugRefused(t *testing.T, cp *testbed.ControlPlane, nic hostNIC) {
	e, sb := attachedNIC(t, cp, nic, "", hostLocal("10.34.0.0/24"))
	e.annotate(t, sb, "dev")
	if msg := e.warningWith(t, sb, "HotplugRefused"); !strings.Contains(msg, e.ns+"/dev") || strings.Contains(msg, "invalid networks annotation") {
		t.Errorf("HotplugRefused Event %q: want it to name network %s/dev, and not call the annotation invalid", msg, e.ns)
	}
	if got := testbed.Links(t, sb.Netns); !reflect.DeepEqual(got, []string{"eth0"}) {
		t.Errorf("pod interfaces after the refused edit: %v, want eth0 only", got)
	}
	nic.onHost(t, "after the refused edit")
	e.statusOf(t, sb, map[string]string{"eth0": "cluster"})
	if devs := e.claimDevices(t, "p-nic"); len(devs) != 0 {
		t.Errorf("claim status.devices after the refused edit: %+v", devs)
	}
	e.MustDel(t, sb)
	e.assertClean(t)
}

// testDRAKill9: multinetd killed with SIGKILL after the ADD; the DEL after its restart gives
// the NIC back and clears the claim's entry, from the record alone.
func testDRAKill9(t *testing.T, cp *testbed.ControlPlane, nic hostNIC) {
	e, sb := attachedNIC(t, cp, nic, "dev", hostLocal("10.35.0.0/24"))
	if devs := e.claimDevices(t, "p-nic"); len(devs) != 1 {
		t.Fatalf("claim status.devices %+v after ADD, want one entry", devs)
	}
	e.Kill9()
	e.Start(t)
	e.MustDel(t, sb)
	nic.onHost(t, "after the DEL that followed the crash")
	if got := testbed.Links(t, sb.Netns); len(got) != 0 {
		t.Errorf("pod interfaces after DEL: %v", got)
	}
	if devs := e.claimDevices(t, "p-nic"); len(devs) != 0 {
		t.Errorf("claim status.devices after DEL: %+v, want none", devs)
	}
	e.assertClean(t)
}

// testDRADelAfterTheNICLeft: multinetd dies during a DEL after host-device gave the NIC
// back and before the record was written (the state is made by hand: the NIC moved back to
// the host under its name, the record untouched). The next DEL, whose host-device DEL finds
// no net1 in the netns, still succeeds and leaves nothing.
func testDRADelAfterTheNICLeft(t *testing.T, cp *testbed.ControlPlane, nic hostNIC) {
	e, sb := attachedNIC(t, cp, nic, "dev", hostLocal("10.38.0.0/24"))
	e.Kill9()
	for _, args := range [][]string{{"link", "set", "net1", "down"}, {"link", "set", "net1", "name", nic.IfName},
		{"link", "set", nic.IfName, "netns", "1"}} {
		cmd := exec.Command("nsenter", append([]string{"--net=" + sb.Netns.Path(), "ip"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ip %v in the pod: %v %s", args, err, out)
		}
	}
	nic.onHost(t, "moved back by hand")
	e.Start(t)
	e.MustDel(t, sb)
	if !strings.Contains(e.Log(), "DEL done without the netns") {
		t.Errorf("daemon log does not say the DEL ran again without the netns:\n%s", e.Log())
	}
	nic.onHost(t, "after the DEL")
	e.assertClean(t)
}

// testDeviceUnplug: an edit removing a device-backed network from a running pod unplugs it:
// the NIC goes back to the host and the claim's entry is cleared.
func testDeviceUnplug(t *testing.T, cp *testbed.ControlPlane, nic hostNIC) {
	e, sb := attachedNIC(t, cp, nic, "dev", hostLocal("10.36.0.0/24"))
	e.annotate(t, sb, "")
	e.WaitEvent(t, sb.Pod, "Unplugged")
	e.waitLinks(t, sb, "eth0")
	nic.onHost(t, "after the unplug")
	if devs := e.claimDevices(t, "p-nic"); len(devs) != 0 {
		t.Errorf("claim status.devices after the unplug: %+v, want none", devs)
	}
	e.MustDel(t, sb)
	e.assertClean(t)
}

// testDRADelAPIServerDown: a DEL while the API server is down still gives the NIC back at
// once; the claim's status, which cannot be cleared then, is cleared once the API server is
// back (the write is kept on disk and retried).
func testDRADelAPIServerDown(t *testing.T, cp *testbed.ControlPlane, nic hostNIC) {
	e, sb := attachedNIC(t, cp, nic, "dev", hostLocal("10.37.0.0/24"))
	if n := len(e.claimDevices(t, "p-nic")); n != 1 {
		t.Fatalf("claim has %d entries after ADD, want 1", n)
	}
	cp.StopAPIServer(t)
	up := false
	defer func() {
		if !up {
			cp.StartAPIServer(t)
		}
	}()
	e.MustDel(t, sb)
	nic.onHost(t, "after DEL")
	e.assertClean(t)
	cp.StartAPIServer(t)
	up = true
	for deadline := time.Now().Add(60 * time.Second); len(e.claimDevices(t, "p-nic")) > 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the claim still has the entry a DEL cleared while the API server was down\n%s", e.Log())
		}
	}
	if !strings.Contains(e.Log(), "claim status written after a retry") {
		t.Errorf("daemon log does not say the kept write was retried:\n%s", e.Log())
	}
}
