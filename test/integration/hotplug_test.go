package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/vishvananda/netlink"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/multinet/multinet/internal/testbed"
)

// annotate sets the pod's networks annotation, as `kubectl annotate --overwrite` does.
func (e *env) annotate(t *testing.T, sb *testbed.Sandbox, value string) {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{networks: value}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.CP.Client.CoreV1().Pods(sb.Pod.Namespace).Patch(testbed.Ctx(t), sb.Pod.Name, k8stypes.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// waitLinks waits until the pod's interfaces are want (sorted names).
func (e *env) waitLinks(t *testing.T, sb *testbed.Sandbox, want ...string) {
	t.Helper()
	slices.Sort(want)
	var got []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = testbed.Links(t, sb.Netns); reflect.DeepEqual(got, want) {
			return
		}
	}
	t.Fatalf("pod %s interfaces %v, want %v\n%s", sb.Pod.Name, got, want, e.Log())
}

// statusOf waits until the pod's network-status lists exactly want (network per interface).
func (e *env) statusOf(t *testing.T, sb *testbed.Sandbox, want map[string]string) {
	t.Helper()
	var got map[string]string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		pod, err := e.CP.Client.CoreV1().Pods(sb.Pod.Namespace).Get(testbed.Ctx(t), sb.Pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var st []nadv1.NetworkStatus
		_ = json.Unmarshal([]byte(pod.Annotations[nadv1.NetworkStatusAnnot]), &st)
		got = map[string]string{}
		for _, s := range st {
			got[s.Interface] = s.Name
		}
		if reflect.DeepEqual(got, want) {
			return
		}
	}
	t.Fatalf("pod %s network-status %v, want %v", sb.Pod.Name, got, want)
}

// addressOf is the first IPv4 address on ifname in the pod, "" while there is none.
func addressOf(sb *testbed.Sandbox, ifname string) string {
	var addr string
	_ = sb.Netns.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(ifname)
		if err != nil {
			return nil
		}
		if addrs, err := netlinksafe.AddrList(l, netlink.FAMILY_V4); err == nil && len(addrs) > 0 {
			addr = addrs[0].IP.String()
		}
		return nil
	})
	return addr
}

// events counts the pod's Events of each reason.
func (e *env) events(t *testing.T, sb *testbed.Sandbox) map[string]int {
	t.Helper()
	sel := fields.Set{"involvedObject.name": sb.Pod.Name, "involvedObject.uid": string(sb.Pod.UID)}.AsSelector().String()
	evs, err := e.CP.Client.CoreV1().Events(sb.Pod.Namespace).List(testbed.Ctx(t), metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, ev := range evs.Items {
		n[ev.Reason] += int(ev.Count)
	}
	return n
}

// hotplugged starts a pod on annotation and attaches it.
func (e *env) hotplugged(t *testing.T, name, annotation string) *testbed.Sandbox {
	t.Helper()
	sb := e.NewSandbox(t, e.ns, name, map[string]string{networks: annotation})
	e.MustAdd(t, sb)
	return sb
}

// testPlugWithoutNames: "blue" becomes "blue,green": net2 appears on green, traffic flows over
// it, network-status and a Plugged Event say so; then "blue" again unplugs it.
func testPlugWithoutNames(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	a, b := e.hotplugged(t, "a", "blue"), e.hotplugged(t, "b", "blue")
	e.annotate(t, a, "blue,green")
	e.annotate(t, b, "blue,green")
	e.waitLinks(t, a, "eth0", "net1", "net2")
	e.waitLinks(t, b, "eth0", "net1", "net2")
	e.statusOf(t, a, map[string]string{"eth0": "cluster", "net1": e.ns + "/blue", "net2": e.ns + "/green"})
	if err := testbed.Ping(t, a.Netns, testbed.IPv4(t, b.Netns, "net2")); err != nil {
		t.Fatalf("ping over the hot-plugged net2: %v", err)
	}
	for _, ev := range e.WaitEvent(t, a.Pod, "Plugged") {
		if ev.Reason == "Plugged" && (!strings.Contains(ev.Message, "net2") || !strings.Contains(ev.Message, "/green") || !strings.Contains(ev.Message, "10.10.2.")) {
			t.Errorf("Plugged Event %q does not name the interface, network and address", ev.Message)
		}
	}
	e.annotate(t, a, "blue")
	e.waitLinks(t, a, "eth0", "net1")
	e.statusOf(t, a, map[string]string{"eth0": "cluster", "net1": e.ns + "/blue"})
	e.WaitEvent(t, a.Pod, "Unplugged")
	e.MustDel(t, a)
	e.MustDel(t, b)
	e.assertClean(t)
}

// testPlugWithNames: JSON elements with interface names are plugged on those names.
func testPlugWithNames(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.hotplugged(t, "p", "")
	e.annotate(t, sb, `[{"name":"blue","interface":"blue0"},{"name":"red","interface":"red0","mac":"02:aa:bb:cc:dd:01"}]`)
	e.waitLinks(t, sb, "eth0", "blue0", "red0")
	e.statusOf(t, sb, map[string]string{"eth0": "cluster", "blue0": e.ns + "/blue", "red0": e.ns + "/red"})
	// One pod per bridge here: the bridge plugin's CHECK compares the bridge's MAC with the one
	// cached at ADD, which another pod's port can change.
	if err := e.Check(t, sb); err != nil {
		t.Errorf("CHECK of a pod with hot-plugged interfaces: %v", err)
	}
	e.MustDel(t, sb)
	e.assertClean(t)
}

// testSameNetworkTwiceAndReorder: the same network listed twice is two interfaces; reordering
// changes nothing (no Event); removing one of two identical elements removes one interface.
func testSameNetworkTwiceAndReorder(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.hotplugged(t, "p", "green,blue")
	e.annotate(t, sb, "green,blue,blue")
	e.waitLinks(t, sb, "eth0", "net1", "net2", "net3")
	e.statusOf(t, sb, map[string]string{"eth0": "cluster", "net1": e.ns + "/green", "net2": e.ns + "/blue", "net3": e.ns + "/blue"})
	e.WaitEvent(t, sb.Pod, "Plugged")
	before := e.events(t, sb)
	e.annotate(t, sb, "blue,green,blue")
	time.Sleep(time.Second) // a reconcile that would change something acts within milliseconds
	if after := e.events(t, sb); after["Plugged"] != before["Plugged"] || after["Unplugged"] != before["Unplugged"] {
		t.Errorf("reordering caused Events: before %v, after %v", before, after)
	}
	e.waitLinks(t, sb, "eth0", "net1", "net2", "net3")
	e.annotate(t, sb, "green,blue")
	e.waitLinks(t, sb, "eth0", "net1", "net2")
	e.statusOf(t, sb, map[string]string{"eth0": "cluster", "net1": e.ns + "/green", "net2": e.ns + "/blue"})
	if n := len(testbed.Allocations(t, e.IPAMDir)); n != 3 {
		t.Errorf("%d addresses allocated, want 3 (cluster, green, one blue)", n)
	}
	e.MustDel(t, sb)
	e.assertClean(t)
}

// testUnplugCreationTimeAndSwap: a pod created with the short form loses a creation-time
// interface, then swaps a network for another in one edit (unplug before plug: the name is
// reused).
func testUnplugCreationTimeAndSwap(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.hotplugged(t, "p", "blue,green")
	e.annotate(t, sb, "green")
	e.waitLinks(t, sb, "eth0", "net2")
	e.statusOf(t, sb, map[string]string{"eth0": "cluster", "net2": e.ns + "/green"})
	if n := len(testbed.Allocations(t, e.IPAMDir)); n != 2 {
		t.Errorf("%d addresses allocated after unplugging blue, want 2", n)
	}
	e.annotate(t, sb, "red")
	e.waitLinks(t, sb, "eth0", "net1")
	e.statusOf(t, sb, map[string]string{"eth0": "cluster", "net1": e.ns + "/red"})
	e.MustDel(t, sb)
	e.assertClean(t)
}

// testAttributeChangeReplugs: asking for an address on an attached network re-plugs it.
func testAttributeChangeReplugs(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.hotplugged(t, "p", "blue")
	e.annotate(t, sb, `[{"name":"blue","ips":["10.10.1.77/24"]}]`)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && addressOf(sb, "net1") != "10.10.1.77" {
		time.Sleep(50 * time.Millisecond) // net1 goes and comes back: no address for a moment
	}
	if ip := addressOf(sb, "net1"); ip != "10.10.1.77" {
		t.Fatalf("net1 has %q after the edit, want 10.10.1.77\n%s", ip, e.Log())
	}
	if n := len(testbed.Allocations(t, e.IPAMDir)); n != 2 {
		t.Errorf("%d addresses allocated, want 2: the old blue address freed", n)
	}
	e.MustDel(t, sb)
	e.assertClean(t)
}

// testUnplugAfterNADDeleted: the NAD goes, then the network is removed from the annotation:
// the unplug works from the config kept in the checkpoint.
func testUnplugAfterNADDeleted(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.hotplugged(t, "p", "blue,green")
	if err := cp.NADClient.K8sCniCncfIoV1().NetworkAttachmentDefinitions(e.ns).Delete(testbed.Ctx(t), "green", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.annotate(t, sb, "blue")
	e.waitLinks(t, sb, "eth0", "net1")
	// network-status is written once the unplug's DEL returned; the bridge plugin deletes the
	// link before it releases the address.
	e.statusOf(t, sb, map[string]string{"eth0": "cluster", "net1": e.ns + "/blue"})
	if n := len(testbed.Allocations(t, e.IPAMDir)); n != 2 {
		t.Errorf("%d addresses allocated, want 2", n)
	}
	e.MustDel(t, sb)
	e.assertClean(t)
}

// testPlugFailsThenNADFixed: a plug whose delegate fails is rolled back with a PlugFailed
// Event carrying the plugin's text, and retried: once the NAD is fixed, it succeeds.
func testPlugFailsThenNADFixed(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	t.Cleanup(func() { testbed.DeleteLink("mnx" + e.ID) })
	good := e.bridgeNAD("fixme", "mnx"+e.ID, "10.10.9.0/24")
	broken := `{"cniVersion":"1.0.0","name":"fixme","plugins":[` + good + `,{"type":"tuning","sysctl":{"net.ipv4.conf.IFNAME.no_such_knob":"1"}}]}`
	cp.CreateNAD(t, e.ns, "fixme", broken)
	sb := e.hotplugged(t, "p", "blue")
	e.annotate(t, sb, "blue,fixme")
	for _, ev := range e.WaitEvent(t, sb.Pod, "PlugFailed") {
		if ev.Reason == "PlugFailed" && (ev.Type != "Warning" || !strings.Contains(ev.Message, "no_such_knob") || !strings.Contains(ev.Message, "/fixme")) {
			t.Errorf("PlugFailed %s %q lacks the network or the plugin's text", ev.Type, ev.Message)
		}
	}
	if got := testbed.Links(t, sb.Netns); !reflect.DeepEqual(got, []string{"eth0", "net1"}) {
		t.Errorf("interfaces after the failed plug %v, want it rolled back", got)
	}
	nad, err := cp.NADClient.K8sCniCncfIoV1().NetworkAttachmentDefinitions(e.ns).Get(testbed.Ctx(t), "fixme", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nad.Spec.Config = good
	if _, err := cp.NADClient.K8sCniCncfIoV1().NetworkAttachmentDefinitions(e.ns).Update(testbed.Ctx(t), nad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitLinks(t, sb, "eth0", "net1", "net2")
	e.statusOf(t, sb, map[string]string{"eth0": "cluster", "net1": e.ns + "/blue", "net2": e.ns + "/fixme"})
	e.MustDel(t, sb)
	e.assertClean(t)
}

// testInvalidEditChangesNothing: an annotation that cannot be applied as it stands (each kind
// of syntax fault, an interface name taken) changes nothing, gets an InvalidNetworkSelection
// Event and waits for the next edit: it is never retried with backoff. An unknown NAD, which
// may be created later, is retried. Fixing the annotation converges.
func testInvalidEditChangesNothing(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.hotplugged(t, "p", "blue")
	invalid := []string{`[{"name":"green"`, `[{"name":"green","mac":"01:00:5e:00:00:01"}]`,
		"green@net5,blue@net5", "green@this-name-is-far-too-long", "blue,green@eth0", `[{"name":"green","ips":["10.1.0.300/24"]}]`}
	for i, bad := range invalid {
		e.annotate(t, sb, bad)
		e.waitLogLines(t, sb, "waiting for it to change", i+1)
		if got := testbed.Links(t, sb.Netns); !reflect.DeepEqual(got, []string{"eth0", "net1"}) {
			t.Errorf("interfaces after the edit %q: %v, want no change", bad, got)
		}
	}
	if n := e.logLines(t, sb, "retrying with backoff"); n != 0 {
		t.Errorf("%d invalid edits retried with backoff, want none\n%s", n, e.Log())
	}
	e.annotate(t, sb, "blue,no-such-nad")
	e.waitLogLines(t, sb, "retrying with backoff", 1)
	if got := testbed.Links(t, sb.Netns); !reflect.DeepEqual(got, []string{"eth0", "net1"}) {
		t.Errorf("interfaces after naming an unknown NAD: %v, want no change", got)
	}
	e.annotate(t, sb, "green")
	e.waitLinks(t, sb, "eth0", "net1")
	e.statusOf(t, sb, map[string]string{"eth0": "cluster", "net1": e.ns + "/green"})
	e.MustDel(t, sb)
	e.assertClean(t)
}

// logLines counts the lines of multinetd's log about the sandbox's pod that contain msg.
func (e *env) logLines(t *testing.T, sb *testbed.Sandbox, msg string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.Dir, "multinetd.log"))
	if err != nil {
		t.Fatal(err)
	}
	pod := fmt.Sprintf(`"pod":%q`, sb.Pod.Namespace+"/"+sb.Pod.Name)
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, msg) && strings.Contains(line, pod) {
			n++
		}
	}
	return n
}

// waitLogLines waits until multinetd's log has at least n lines about the pod containing msg.
func (e *env) waitLogLines(t *testing.T, sb *testbed.Sandbox, msg string, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if e.logLines(t, sb, msg) >= n {
			return
		}
	}
	t.Fatalf("multinetd never logged %q %d times for pod %s\n%s", msg, n, sb.Pod.Name, e.Log())
}

// slowNetwork creates a NAD whose plugin (a bridge on mn<br><node ID>) runs verb (ADD or DEL)
// only after the test touches the release file; it touches the started file when it waits.
func (e *env) slowNetwork(t *testing.T, name, br, subnet, verb string) (started, release string) {
	t.Helper()
	started, release = filepath.Join(e.Dir, name+"-started"), filepath.Join(e.Dir, name+"-release")
	e.scriptPlugin(t, "slow-"+name, fmt.Sprintf(`if [ "$CNI_COMMAND" = %[4]s ]; then
  touch %[1]s
  while [ ! -e %[2]s ]; do sleep 0.05; done
fi
exec %[3]s
`, started, release, e.bridgeBin(), verb))
	e.scriptNAD(t, name, "slow-"+name, "mn"+br+e.ID, subnet)
	return started, release
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// testEditDuringSandboxAdd: the annotation is edited while the runtime's ADD runs; the edit is
// applied right after it.
func testEditDuringSandboxAdd(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	started, release := e.slowNetwork(t, "slow", "q", "10.10.11.0/24", "ADD")
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "slow"})
	errc := make(chan error, 1)
	go func() { _, err := e.Add(t, sb); errc <- err }()
	waitFile(t, started)
	e.annotate(t, sb, "slow,blue")
	time.Sleep(200 * time.Millisecond) // let the informer see the edit while the ADD still runs
	touch(t, release)
	if err := <-errc; err != nil {
		t.Fatalf("ADD: %v", err)
	}
	e.waitLinks(t, sb, "eth0", "net1", "net2")
	e.statusOf(t, sb, map[string]string{"eth0": "cluster", "net1": e.ns + "/slow", "net2": e.ns + "/blue"})
	e.MustDel(t, sb)
	e.assertClean(t)
}

// testPodDeletedRightAfterEdit: the runtime's DEL right after an edit takes every attachment,
// the hot-plugged ones included: nothing is left.
func testPodDeletedRightAfterEdit(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.hotplugged(t, "p", "blue")
	e.annotate(t, sb, "blue,green,red")
	e.MustDel(t, sb)
	if err := cp.Client.CoreV1().Pods(e.ns).Delete(testbed.Ctx(t), "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // a late reconcile must find nothing to plug
	e.assertClean(t)
	if got := testbed.Links(t, sb.Netns); len(got) != 0 {
		t.Errorf("interfaces left after DEL: %v", got)
	}
}

// killedDuring is a hot plug edit interrupted by kill -9 of multinetd while the slow network's
// plugin runs verb: after the restart the pod must converge to after, with addrs addresses.
type killedDuring struct {
	verb, before, after string
	links               []string
	status              map[string]string // interface -> network name, without the namespace
	addrs               int
}

func (e *env) killDuring(t *testing.T, c killedDuring) {
	t.Helper()
	started, release := e.slowNetwork(t, "slow", "r", "10.10.12.0/24", c.verb)
	sb := e.hotplugged(t, "p", c.before)
	e.annotate(t, sb, c.after)
	waitFile(t, started)
	e.KillGroup9()
	touch(t, release)
	e.Start(t)
	e.waitLinks(t, sb, c.links...)
	want := map[string]string{"eth0": "cluster"}
	for ifname, network := range c.status {
		want[ifname] = e.ns + "/" + network
	}
	e.statusOf(t, sb, want)
	if n := len(testbed.Allocations(t, e.IPAMDir)); n != c.addrs {
		t.Errorf("%d addresses allocated, want %d: nothing duplicated or leaked by the interrupted edit", n, c.addrs)
	}
	e.MustDel(t, sb)
	e.assertClean(t)
	if n := testbed.VethsOn(t, "mnr"+e.ID); n != 0 {
		t.Errorf("%d veths left on the slow network's bridge", n)
	}
}

// testDaemonKilledDuringPlug: multinetd dies while a plug's ADD runs; after the restart the
// interrupted attachment (intent, no result) is DELed and plugged again: no duplicate.
func testDaemonKilledDuringPlug(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	e.killDuring(t, killedDuring{verb: "ADD", before: "blue", after: "blue,slow",
		links: []string{"eth0", "net1", "net2"}, status: map[string]string{"net1": "blue", "net2": "slow"}, addrs: 3})
}

// testDaemonKilledDuringUnplug: multinetd dies while an unplug's DEL runs; after the restart
// the unplug is done again (DEL is idempotent): the interface and its address are gone.
func testDaemonKilledDuringUnplug(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	e.killDuring(t, killedDuring{verb: "DEL", before: "blue,slow", after: "blue",
		links: []string{"eth0", "net1"}, status: map[string]string{"net1": "blue"}, addrs: 2})
}

// testTwentyPodsEditedAtOnce: 20 pods edited at once all converge.
func testTwentyPodsEditedAtOnce(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	pods := make([]*testbed.Sandbox, 20)
	for i := range pods {
		pods[i] = e.hotplugged(t, fmt.Sprintf("p%d", i), "blue")
	}
	var wg sync.WaitGroup
	for _, sb := range pods {
		wg.Add(1)
		go func() { defer wg.Done(); e.annotate(t, sb, "blue,green") }()
	}
	wg.Wait()
	for _, sb := range pods {
		e.waitLinks(t, sb, "eth0", "net1", "net2")
		e.statusOf(t, sb, map[string]string{"eth0": "cluster", "net1": e.ns + "/blue", "net2": e.ns + "/green"})
	}
	for _, sb := range pods {
		e.MustDel(t, sb)
	}
	e.assertClean(t)
}
