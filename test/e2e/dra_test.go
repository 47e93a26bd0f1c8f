package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/multinet/multinet/internal/dra/nics"
	"github.com/multinet/multinet/internal/testbed"
)

// Device-backed networks (docs/dra.md) on the real node: the NIC driver inside multinetd
// (test/e2e/overlay's draNICs) publishes the host links named mnnic* as devices of the
// DeviceClass nic.multinet.io with the resourceName multinet.io/test-nic; the scheduler
// allocates them to the pods' ResourceClaims, the kubelet prepares them through the driver,
// and multinetd's host-device delegate moves the allocated link into the pod.
const (
	draNamespace = "dra"
	nicClass     = "nic.multinet.io"      // deploy/'s DeviceClass, and the driver's name
	nicResource  = "multinet.io/test-nic" // the overlay's draNICs resourceName
)

// devnet is the device-backed network of the tests: host-device, addresses from the pod's
// selection element (static IPAM), no gateway.
var devnet = network{namespace: draNamespace, name: "devnet", subnetPrefix: "10.10.40."}

// testDeviceNetwork: two pods, each with a ResourceClaim from its own template selecting one
// end of a host veth pair, get their end as net1 with the address asked for, ping each other
// over it, and the claim's status.devices entry says what network-status says. A hot-plug edit
// asking for the device network is refused with a HotplugRefused Event. Deleting the pods
// gives each link back to the host under its own name.
func testDeviceNetwork(t *testing.T, e *env) {
	e.createDeviceNetwork(t)
	macs := vethPair(t, "mnnic0a", "mnnic0b")
	e.waitPublished(t, "mnnic0a", "mnnic0b")
	pods := []struct{ name, nic, ip string }{{"a", "mnnic0a", "10.10.40.1"}, {"b", "mnnic0b", "10.10.40.2"}}
	for _, p := range pods {
		e.createClaimTemplate(t, draNamespace, "nic-"+p.name, p.nic)
	}
	e.deletePodsAtCleanup(t, "a", "b")
	for _, p := range pods {
		pod := devicePod(p.name, p.ip)
		pod.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "nic", ResourceClaimTemplateName: ptr.To("nic-" + p.name)}}
		e.c.CreatePodObject(t, pod)
	}
	for _, p := range pods {
		e.c.WaitPodRunning(t, draNamespace, p.name, 3*time.Minute)
		e.checkPodNetworks(t, draNamespace, p.name, devnet)
		if got := e.addrs(t, draNamespace, p.name)["net1"]; got != p.ip {
			t.Errorf("pod %s: net1 has %s, want the address asked for, %s", p.name, got, p.ip)
		}
		if _, ok := hostLink(t, p.nic); ok {
			t.Errorf("%s is still on the host while pod %s runs", p.nic, p.name)
		}
		e.checkDeviceStatus(t, p.name, generatedClaim(t, e.c.GetPod(t, draNamespace, p.name)), p.nic, macs[p.nic])
	}
	out := e.c.MustExec(t, draNamespace, "a", "ping", "-c", "2", "-W", "2", "-I", "net1", pods[1].ip)
	if !strings.Contains(out, "2 packets received") {
		t.Fatalf("ping from a to b over their veth pair (net1):\n%s", out)
	}
	e.checkHotplugRefused(t, "a")
	for _, p := range pods {
		e.c.DeletePod(t, draNamespace, p.name)
	}
	for _, p := range pods {
		e.waitBackOnHost(t, p.nic, macs[p.nic])
		if recs := podRecords(t, draNamespace, p.name); len(recs) != 0 {
			t.Errorf("pod %s is gone, multinetd still holds its records %v", p.name, recs)
		}
	}
}

// checkHotplugRefused edits the networks of the running pod to ask for the device network a
// second time: multinetd refuses with a Warning Event HotplugRefused and the pod keeps its
// interfaces.
func (e *env) checkHotplugRefused(t *testing.T, pod string) {
	t.Helper()
	ip := e.addrs(t, draNamespace, pod)["net1"]
	e.c.RunKubectl(t, "-n", draNamespace, "annotate", "pod", pod, "--overwrite",
		fmt.Sprintf(`k8s.v1.cni.cncf.io/networks=[{"name":"devnet","ips":["%s/24"]},{"name":"devnet","ips":["10.10.40.99/24"]}]`, ip))
	e.waitEvent(t, draNamespace, pod, corev1.EventTypeWarning, "HotplugRefused")
	if got := e.addrs(t, draNamespace, pod); len(got) != 2 || got["net1"] != ip {
		t.Errorf("pod %s has %v after the refused edit, want eth0 and net1 (%s) as before", pod, got, ip)
	}
}

// testDeviceNetworkDaemonKilled: a pod with a named ResourceClaim; multinetd is killed with
// SIGKILL once the driver recorded the claim as prepared and before the pod's ADD began (the
// kubelet may not have had the driver's answer yet: it prepares again after the restart),
// and again during the pod's DEL, after the link went back to the host and the claim's entry
// was cleared, while the cluster network's DEL waits for host-local's lock (held by the
// test). The pod starts with its device; once deleted, the link is on the host under its own
// name (not lost in the gone pod's netns), the named claim has no status entry of it, the DEL
// after the restart succeeds, and no record, address or prepared claim is left.
func testDeviceNetworkDaemonKilled(t *testing.T, e *env) {
	e.createDeviceNetwork(t)
	macs := vethPair(t, "mnnic1a", "mnnic1b")
	e.waitPublished(t, "mnnic1a", "mnnic1b")
	claim := e.createClaim(t, "crash-nic", "mnnic1a")
	clusterBefore := len(testbed.Allocations(t, clusterIPAMDir))
	e.deletePodsAtCleanup(t, "crash")
	pod := devicePod("crash", "10.10.40.11")
	pod.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "nic", ResourceClaimName: ptr.To(claim.Name)}}

	restarts := e.multinetdRestarts(t)
	pid := multinetdPID(t)
	e.c.CreatePodObject(t, pod)
	waitPrepared(t, string(claim.UID))
	recs := killStopped(t, pid, func() []string { return podRecords(t, draNamespace, "crash") })
	if len(recs) != 0 {
		t.Fatalf("the ADD of pod crash had begun (records %v) when multinetd was stopped: the kill did not land between prepare and ADD", recs)
	}
	t.Logf("multinetd (pid %d) killed after the claim was prepared, before the ADD", pid)
	e.waitMultinetdRestarted(t, restarts)
	e.c.WaitPodRunning(t, draNamespace, "crash", 4*time.Minute)
	e.checkPodNetworks(t, draNamespace, "crash", devnet)
	e.checkDeviceStatus(t, "crash", claim.Name, "mnnic1a", macs["mnnic1a"])

	restarts = e.multinetdRestarts(t)
	unlock := lockClusterIPAM(t)
	e.c.DeletePodNoWait(t, draNamespace, "crash")
	e.waitBackOnHost(t, "mnnic1a", macs["mnnic1a"])
	e.waitClaimEntry(t, claim.Name, "mnnic1a", false)
	recs = killStopped(t, multinetdPID(t), func() []string { return podRecords(t, draNamespace, "crash") })
	unlock()
	if len(recs) == 0 {
		t.Fatal("the DEL of pod crash had ended when multinetd was killed: its cluster network's DEL did not wait for host-local's lock")
	}
	t.Log("multinetd killed during the DEL: the link was back on the host, the cluster network's DEL not done")
	e.waitMultinetdRestarted(t, restarts)
	e.waitPodGone(t, draNamespace, "crash", 4*time.Minute)

	e.waitBackOnHost(t, "mnnic1a", macs["mnnic1a"])
	if _, ok := hostLink(t, "mnnic1b"); !ok {
		t.Error("mnnic1b, the peer of the pod's link, is gone: the pair was destroyed with a netns")
	}
	e.waitClaimEntry(t, claim.Name, "mnnic1a", false)
	// A DEL is idempotent: the one after the restart finds the link already given back and
	// succeeds. (containerd takes a DEL error mentioning "not found" for success, so the pod
	// goes either way: only multinetd's Event and record tell.)
	if evs := e.c.PodEvents(t, draNamespace, "crash"); strings.Contains(evs, "NetworkTeardownFailed") {
		t.Errorf("the DEL after multinetd's restart failed:\n%s", evs)
	}
	if recs := podRecords(t, draNamespace, "crash"); len(recs) != 0 {
		t.Errorf("pod crash is gone, multinetd still holds its records:\n%s\nmultinetd:\n%s", readRecords(t, recs), e.c.MultinetLogs(t))
	}
	if n := len(testbed.Allocations(t, clusterIPAMDir)); n != clusterBefore {
		t.Errorf("cluster network holds %d addresses, %d before the pod", n, clusterBefore)
	}
	waitUnprepared(t, string(claim.UID))
	if err := e.c.Client.ResourceV1().ResourceClaims(draNamespace).Delete(t.Context(), claim.Name, metav1.DeleteOptions{}); err != nil {
		t.Errorf("deleting claim %s: %v", claim.Name, err)
	}
}

// createDeviceNetwork creates namespace dra and the NAD of devnet (once for all subtests): a
// host-device delegate without "device" (multinetd fills it in from the claim), addresses
// from the selection element's "ips" (static IPAM), annotated with the NICs' resourceName.
func (e *env) createDeviceNetwork(t *testing.T) {
	t.Helper()
	if e.draReady {
		return
	}
	e.c.CreateNamespace(t, draNamespace)
	conf := `{"cniVersion":"1.0.0","name":"devnet","plugins":[{"type":"host-device","capabilities":{"ips":true},"ipam":{"type":"static"}}]}`
	e.createAnnotatedNAD(t, draNamespace, devnet.name, conf, map[string]string{resourceNameAnnotation: nicResource})
	e.draReady = true
}

// devicePod is a busybox pod of namespace dra asking for devnet with the address ip/24 (its
// claims are the caller's).
func devicePod(name, ip string) *corev1.Pod {
	return testbed.BusyboxPod(draNamespace, name, map[string]string{
		"k8s.v1.cni.cncf.io/networks": fmt.Sprintf(`[{"name":"devnet","ips":["%s/24"]}]`, ip)})
}

// nicRequest is a claim's request for the NIC published for the host link ifName, or for
// any NIC of the class when ifName is empty.
func nicRequest(ifName string) resourcev1.DeviceClaim {
	req := &resourcev1.ExactDeviceRequest{DeviceClassName: nicClass}
	if ifName != "" {
		req.Selectors = []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{
			Expression: fmt.Sprintf(`device.attributes[%q].ifName == %q`, nicClass, ifName)}}}
	}
	return resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{Name: "nic", Exactly: req}}}
}

// createClaimTemplate creates a ResourceClaimTemplate for the NIC of the host link ifName, or
// for any NIC of the class when ifName is empty.
func (e *env) createClaimTemplate(t testing.TB, namespace, name, ifName string) {
	t.Helper()
	tmpl := &resourcev1.ResourceClaimTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       resourcev1.ResourceClaimTemplateSpec{Spec: resourcev1.ResourceClaimSpec{Devices: nicRequest(ifName)}},
	}
	if _, err := e.c.Client.ResourceV1().ResourceClaimTemplates(namespace).Create(t.Context(), tmpl, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating resource claim template %s: %v", name, err)
	}
}

// createClaim creates a ResourceClaim of namespace dra for the NIC of ifName.
func (e *env) createClaim(t *testing.T, name, ifName string) *resourcev1.ResourceClaim {
	t.Helper()
	claim := &resourcev1.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: draNamespace},
		Spec:       resourcev1.ResourceClaimSpec{Devices: nicRequest(ifName)},
	}
	created, err := e.c.Client.ResourceV1().ResourceClaims(draNamespace).Create(t.Context(), claim, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating resource claim %s: %v", name, err)
	}
	return created
}

// generatedClaim is the name of the claim the control plane made for the pod from its
// template (pod.status.resourceClaimStatuses).
func generatedClaim(t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	for _, s := range pod.Status.ResourceClaimStatuses {
		if s.Name == "nic" && s.ResourceClaimName != nil {
			return *s.ResourceClaimName
		}
	}
	t.Fatalf("pod %s runs without a generated claim for \"nic\" in its status: %+v", pod.Name, pod.Status.ResourceClaimStatuses)
	return ""
}

// checkDeviceStatus checks the claim's allocation and its status.devices entry of the NIC of
// ifName against the pod's network-status entry of net1 and the link's MAC: conditions Ready
// and NetworkReady true, networkData with net1, its address in CIDR form and the MAC.
func (e *env) checkDeviceStatus(t *testing.T, pod, claim, ifName, mac string) {
	t.Helper()
	c := e.getClaim(t, claim)
	if c.Status.Allocation == nil || len(c.Status.Allocation.Devices.Results) != 1 {
		t.Fatalf("claim %s: allocation %+v, want one device", claim, c.Status.Allocation)
	}
	if r := c.Status.Allocation.Devices.Results[0]; r.Driver != nicClass || r.Device != nics.DeviceName(ifName) || r.Pool != testbed.ClusterNodeName {
		t.Errorf("claim %s was allocated %s/%s/%s, want %s/%s/%s", claim, r.Driver, r.Pool, r.Device, nicClass, testbed.ClusterNodeName, nics.DeviceName(ifName))
	}
	entry := e.waitClaimEntry(t, claim, ifName, true)
	st := e.networkStatus(t, draNamespace, pod, 2)[1]
	if st.Interface != "net1" || st.Name != draNamespace+"/"+devnet.name || !strings.EqualFold(st.Mac, mac) || len(st.IPs) != 1 {
		t.Errorf("pod %s: network-status of the device network %+v, want net1 of %s/%s with MAC %s and one address", pod, st, draNamespace, devnet.name, mac)
	}
	if st.DeviceInfo != nil {
		t.Errorf("pod %s: network-status device-info %+v for a veth (no PCI address)", pod, st.DeviceInfo)
	}
	for _, typ := range []string{"Ready", "NetworkReady"} {
		if cond := findCondition(entry.Conditions, typ); cond == nil || cond.Status != metav1.ConditionTrue {
			t.Errorf("claim %s, device %s: condition %s is %+v, want True", claim, ifName, typ, cond)
		}
	}
	nd := entry.NetworkData
	if nd == nil {
		t.Fatalf("claim %s, device %s: no networkData in %+v", claim, ifName, entry)
	}
	if nd.InterfaceName != st.Interface || len(nd.IPs) != 1 || len(st.IPs) != 1 || nd.IPs[0] != st.IPs[0]+"/24" ||
		!strings.EqualFold(nd.HardwareAddress, st.Mac) {
		t.Errorf("claim %s, device %s: networkData %+v disagrees with network-status %+v", claim, ifName, nd, st)
	}
}

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

func (e *env) getClaim(t *testing.T, name string) *resourcev1.ResourceClaim {
	t.Helper()
	c, err := e.c.Client.ResourceV1().ResourceClaims(draNamespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting resource claim %s: %v", name, err)
	}
	return c
}

// waitClaimEntry waits until the claim has (present) or has not a status.devices entry of
// the NIC of ifName, and returns it when present.
func (e *env) waitClaimEntry(t *testing.T, claim, ifName string, present bool) *resourcev1.AllocatedDeviceStatus {
	t.Helper()
	var last []resourcev1.AllocatedDeviceStatus
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		c := e.getClaim(t, claim)
		last = c.Status.Devices
		var found *resourcev1.AllocatedDeviceStatus
		for i := range last {
			if last[i].Driver == nicClass && last[i].Device == nics.DeviceName(ifName) {
				found = &last[i]
			}
		}
		if (found != nil) == present {
			return found
		}
	}
	if present {
		t.Fatalf("claim %s never had a status entry of device %s; status.devices %+v\n%s", claim, ifName, last, e.c.MultinetLogs(t))
	}
	t.Fatalf("claim %s keeps a stale status entry of device %s: %+v", claim, ifName, last)
	return nil
}

// waitEvent waits for an Event of type and reason on the pod.
func (e *env) waitEvent(t *testing.T, namespace, pod, typ, reason string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		evs, err := e.c.Client.CoreV1().Events(namespace).List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs.Items {
			if ev.Type == typ && ev.Reason == reason {
				t.Logf("pod %s: %s %s: %s", pod, ev.Type, ev.Reason, ev.Message)
				return
			}
		}
	}
	t.Fatalf("no %s Event %s on pod %s:\n%s", typ, reason, pod, e.c.PodEvents(t, namespace, pod))
}

// waitPublished waits until the NIC driver publishes the host links names as devices with
// the test resourceName, so that the scheduler can allocate them.
func (e *env) waitPublished(t testing.TB, names ...string) {
	t.Helper()
	var seen []string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		list, err := e.c.Client.ResourceV1().ResourceSlices().List(t.Context(), metav1.ListOptions{FieldSelector: "spec.driver=" + nicClass})
		if err != nil {
			t.Fatal(err)
		}
		seen = nil
		for _, s := range list.Items {
			for _, d := range s.Spec.Devices {
				if a, ok := d.Attributes["k8s.cni.cncf.io/resourceName"]; ok && a.StringValue != nil && *a.StringValue == nicResource {
					seen = append(seen, d.Name)
				}
			}
		}
		if hasEvery(seen, names) {
			return
		}
	}
	t.Fatalf("driver %s publishes %v with resourceName %s, want %v among them\n%s", nicClass, seen, nicResource, names, e.c.MultinetLogs(t))
}

func hasEvery(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == nics.DeviceName(w)
		}
		if !found {
			return false
		}
	}
	return true
}

// deletePodsAtCleanup deletes the pods of namespace dra at the end of the test, whatever its
// outcome, before the links it made go: a pod holding one gives it back on its DEL.
func (e *env) deletePodsAtCleanup(t *testing.T, names ...string) {
	t.Cleanup(func() {
		for _, n := range names {
			if err := deletePodAndWait(e.c, draNamespace, n, 2*time.Minute); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
}

// multinetdRestarts is the restart count of the multinetd container.
func (e *env) multinetdRestarts(t *testing.T) int32 {
	t.Helper()
	p := e.c.MultinetPod(t)
	if p == nil {
		t.Fatal("no multinetd pod")
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == "multinetd" {
			return cs.RestartCount
		}
	}
	t.Fatalf("multinetd pod %s has no multinetd container status", p.Name)
	return 0
}

// waitMultinetdRestarted waits until the kubelet restarted the killed multinetd container
// (its restart count past before) and multinetd is ready again.
func (e *env) waitMultinetdRestarted(t *testing.T, before int32) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for e.multinetdRestarts(t) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("multinetd's container was not restarted after it was killed")
		}
		time.Sleep(250 * time.Millisecond)
	}
	e.c.WaitMultinetReady(t)
}

// killStopped stops multinetd (SIGSTOP), reads inspect while it cannot move, and kills it
// (SIGKILL): the kill lands exactly where inspect saw it.
func killStopped[T any](t *testing.T, pid int, inspect func() T) T {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("stopping multinetd (pid %d): %v", pid, err)
	}
	defer func() { // also when inspect fails the test: a stopped multinetd would hang the node
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Errorf("killing multinetd (pid %d): %v", pid, err)
		}
	}()
	return inspect()
}
