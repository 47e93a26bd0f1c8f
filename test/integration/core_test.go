package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/testbed"
)

const networks = "k8s.v1.cni.cncf.io/networks"

// bridgeNAD is a NAD config for a bridge network with host-local IPAM in the node's ipam dir.
func (n *env) bridgeNAD(name, bridge, subnet string) string {
	return fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"bridge","bridge":%q,"ipMasq":false,"isGateway":false,
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]]}}`, name, bridge, n.IPAMDir, subnet)
}

// scriptPlugin installs a test plugin of type typ in the node's bin dir: a shell script (the
// "#!/bin/sh" line added), typically wrapping the real bridge plugin (bridgeBin).
func (e *env) scriptPlugin(t *testing.T, typ, script string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.BinDir, typ), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// bridgeBin is the real bridge plugin, for scriptPlugin's scripts to run.
func (e *env) bridgeBin() string { return filepath.Join(e.BinDir, "bridge") }

// scriptNAD creates NAD name: a bridge network on bridge br (removed at cleanup) with subnet,
// whose plugin is typ (a scriptPlugin).
func (e *env) scriptNAD(t *testing.T, name, typ, br, subnet string) {
	t.Helper()
	t.Cleanup(func() { testbed.DeleteLink(br) })
	conf := strings.Replace(e.bridgeNAD(name, br, subnet), `"type":"bridge"`, `"type":"`+typ+`"`, 1)
	e.CP.CreateNAD(t, e.ns, name, conf)
}

// macvlanNAD is a NAD config for macvlan (bridge mode) on master, host-local IPAM.
func (n *env) macvlanNAD(name, master, subnet string) string {
	return fmt.Sprintf(`{"cniVersion":"0.4.0","name":%q,"type":"macvlan","master":%q,"mode":"bridge",
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]]}}`, name, master, n.IPAMDir, subnet)
}

// masterLink creates a link on the host for macvlan to sit on (a bridge: this kernel has no dummy), removed at cleanup.
func masterLink(t *testing.T, name string) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "add", name, "type", "bridge").CombinedOutput(); err != nil {
		t.Fatalf("ip link add %s: %v %s", name, err, out)
	}
	t.Cleanup(func() { testbed.DeleteLink(name) })
	if out, err := exec.Command("ip", "link", "set", name, "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s up: %v %s", name, err, out)
	}
}

// env is one test's world: the shared control plane, a namespace, a node.
type env struct {
	*testbed.Node
	ns string
}

func newEnv(t *testing.T, cp *testbed.ControlPlane, daemonFlags ...string) *env {
	t.Helper()
	n := testbed.NewNode(t, cp, daemonFlags...)
	ns := "t-" + n.ID
	cp.CreateNamespace(t, ns)
	return &env{Node: n, ns: ns}
}

// threeNetworks creates a bridge, a second bridge and a macvlan NAD in the env's namespace.
func (e *env) threeNetworks(t *testing.T) {
	t.Helper()
	for _, br := range []string{"mnb", "mnd", "mnm"} {
		t.Cleanup(func() { testbed.DeleteLink(br + e.ID) })
	}
	masterLink(t, "mnm"+e.ID)
	e.CP.CreateNAD(t, e.ns, "blue", e.bridgeNAD("blue", "mnb"+e.ID, "10.10.1.0/24"))
	e.CP.CreateNAD(t, e.ns, "green", e.bridgeNAD("green", "mnd"+e.ID, "10.10.2.0/24"))
	e.CP.CreateNAD(t, e.ns, "red", e.macvlanNAD("red", "mnm"+e.ID, "10.10.3.0/24"))
}

func TestCore(t *testing.T) {
	testbed.RequireRoot(t)
	cp := testbed.StartControlPlane(t)
	t.Run("ZeroOneThreeNetworksWithTraffic", func(t *testing.T) { testZeroOneThree(t, cp) })
	cp.CreateNamespace(t, "global")
	for _, c := range []struct {
		name string
		f    func(*testing.T, *testbed.ControlPlane)
	}{
		{"ExplicitInterfaceNamesAndJSONFields", testExplicitNames},
		{"OtherNamespacesNADsByDefault", testOtherNamespacesByDefault},
		{"NamespaceIsolationDenied", testNamespaceIsolation},
		{"TraversalTypeRejected", testTraversalTypeRejected},
		{"DelAfterNADDeleted", testDelAfterNADDeleted},
		{"DelAfterPodDeleted", testDelAfterPodDeleted},
		{"DelWithNetnsRemoved", testDelWithNetnsRemoved},
		{"DelTwice", testDelTwice},
		{"CheckDetectsRemovedInterface", testCheckDetectsRemovedInterface},
		{"FailingThirdDelegateRollsBack", testFailingThirdDelegateRollsBack},
		{"DaemonDownIsRetriable", testDaemonDownIsRetriable},
		{"BadInputGetsClearErrors", testBadInput},
		{"StatusReportsReadiness", testStatusReportsReadiness},
		{"PerPodDefaultNetworkAndConfFileNAD", testPerPodDefaultNetworkAndConfFileNAD},
		{"Kill9", testKill9},
		{"GCRemovesForgottenSandboxes", testGCRemovesForgottenSandboxes},
		{"SweepRemovesSandboxesWhoseNetnsIsGone", testSweep},
		{"DelWithAPIServerStopped", testDelWithAPIServerStopped},
		{"StartWithAPIServerDown", testStartWithAPIServerDown},
		{"UnsupportedCNIVersionLeavesNothing", testUnsupportedCNIVersion},
		{"ArgsThePluginCannotParseLeaveNothing", testArgsThePluginCannotParse},
		{"IPAMTypeWithAPathRefused", testIPAMTypeWithAPathRefused},
		{"DelegateBinaryRemovedBetweenAddAndDel", testDelegateBinaryRemoved},
		{"DelegateFailsDelOnce", testDelegateFailsDelOnce},
		{"DualStackIPsAndDefaultRoutes", testDualStackIPsAndDefaultRoutes},
		{"HotplugWithoutNamesWithTraffic", testPlugWithoutNames},
		{"HotplugWithNames", testPlugWithNames},
		{"HotplugSameNetworkTwiceAndReorder", testSameNetworkTwiceAndReorder},
		{"HotplugUnplugCreationTimeAndSwap", testUnplugCreationTimeAndSwap},
		{"HotplugAttributeChangeReplugs", testAttributeChangeReplugs},
		{"HotplugUnplugAfterNADDeleted", testUnplugAfterNADDeleted},
		{"HotplugFailsThenNADFixed", testPlugFailsThenNADFixed},
		{"HotplugInvalidEditChangesNothing", testInvalidEditChangesNothing},
		{"HotplugEditDuringSandboxAdd", testEditDuringSandboxAdd},
		{"HotplugPodDeletedRightAfterEdit", testPodDeletedRightAfterEdit},
		{"HotplugDaemonKilledDuringPlug", testDaemonKilledDuringPlug},
		{"HotplugDaemonKilledDuringUnplug", testDaemonKilledDuringUnplug},
		{"HotplugTwentyPodsEditedAtOnce", testTwentyPodsEditedAtOnce},
		{"ParallelAttachOrder", testParallelOrder},
		{"ParallelAttachRollback", testParallelRollback},
		{"ParallelAttachDelPartiallyAttached", testDelPartiallyAttached},
		{"ParallelAttachKill9", testKill9DuringParallelDelegates},
		{"ParallelAttachSerialNAD", testSerialNAD},
		{"ParallelAttachOff", testParallelAttachOff},
	} {
		t.Run(c.name, func(t *testing.T) { c.f(t, cp) })
	}
}

func testZeroOneThree(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	cases := []struct {
		annotation string
		want       []string
	}{
		{"", []string{"eth0"}},
		{"blue", []string{"eth0", "net1"}},
		{`[{"name":"blue"},{"name":"green","namespace":"` + e.ns + `"},{"name":"red"}]`, []string{"eth0", "net1", "net2", "net3"}},
	}
	for i, c := range cases {
		ann := map[string]string{}
		if c.annotation != "" {
			ann[networks] = c.annotation
		}
		a := e.NewSandbox(t, e.ns, fmt.Sprintf("a%d", i), ann)
		b := e.NewSandbox(t, e.ns, fmt.Sprintf("b%d", i), ann)
		res := e.MustAdd(t, a)
		e.MustAdd(t, b)
		if got := testbed.Links(t, a.Netns); !reflect.DeepEqual(got, c.want) {
			t.Fatalf("%d networks: pod interfaces %v, want %v", len(c.want)-1, got, c.want)
		}
		r, err := types100.GetResult(res)
		if err != nil || len(r.IPs) != 1 || !strings.HasPrefix(r.IPs[0].Address.IP.String(), "10.244.") {
			t.Fatalf("result returned to the runtime is not the cluster network's: %v %v", res, err)
		}
		for _, ifname := range c.want {
			if err := testbed.Ping(t, a.Netns, testbed.IPv4(t, b.Netns, ifname)); err != nil {
				t.Fatalf("over %s: %v", ifname, err)
			}
		}
		st := e.NetworkStatus(t, a, len(c.want))
		if st[0].Name != "cluster" || !st[0].Default || st[0].Interface != "eth0" {
			t.Errorf("network-status[0] = %+v, want the default cluster network on eth0", st[0])
		}
		for j := 1; j < len(st); j++ {
			if st[j].Interface != c.want[j] || st[j].Default || len(st[j].IPs) != 1 || st[j].Mac == "" {
				t.Errorf("network-status[%d] = %+v", j, st[j])
			}
			if st[j].IPs[0] != testbed.IPv4(t, a.Netns, c.want[j]).String() {
				t.Errorf("network-status[%d] ips %v, interface has %s", j, st[j].IPs, testbed.IPv4(t, a.Netns, c.want[j]))
			}
		}
		e.MustDel(t, a)
		e.MustDel(t, b)
	}
	if got := testbed.Allocations(t, e.IPAMDir); len(got) != 0 {
		t.Fatalf("addresses still allocated after every DEL: %v", got)
	}
	if got := e.Checkpoints(t); len(got) != 0 {
		t.Fatalf("checkpoint records left after every DEL: %v", got)
	}
}

func testExplicitNames(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	ann := `[{"name":"blue","interface":"blue0","ips":["10.10.1.77/24"],"mac":"02:11:22:33:44:55"},{"name":"green"},` +
		`{"name":"red","interface":"net1","cni-args":{"note":"x"}}]`
	a := e.NewSandbox(t, e.ns, "named", map[string]string{networks: ann})
	e.MustAdd(t, a)
	if got, want := testbed.Links(t, a.Netns), []string{"blue0", "eth0", "net1", "net2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("interfaces %v, want %v", got, want)
	}
	st := e.NetworkStatus(t, a, 4)
	byIf := map[string]int{}
	for i, s := range st {
		byIf[s.Interface] = i
	}
	blue := st[byIf["blue0"]]
	if blue.Name != e.ns+"/blue" || !slices.Equal(blue.IPs, []string{"10.10.1.77"}) || blue.Mac != "02:11:22:33:44:55" {
		t.Errorf("requested IP/MAC not honoured: %+v", blue)
	}
	if st[byIf["net2"]].Name != e.ns+"/green" || st[byIf["net1"]].Name != e.ns+"/red" {
		t.Errorf("names/interfaces: %+v", st)
	}
	// One Normal Event lists what the pod got, for kubectl describe pod.
	for _, ev := range e.WaitEvent(t, a.Pod, "AddedInterface") {
		if ev.Reason != "AddedInterface" {
			continue
		}
		for _, want := range []string{"Add eth0 [10.244.", "Add blue0 [10.10.1.77/24] from " + e.ns + "/blue", "Add net2 [", "from " + e.ns + "/red"} {
			if !strings.Contains(ev.Message, want) {
				t.Errorf("AddedInterface Event %q does not contain %q", ev.Message, want)
			}
		}
	}
	e.MustDel(t, a)
	pod, err := cp.Client.CoreV1().Pods(e.ns).Get(testbed.Ctx(t), "named", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(pod.Annotations)
	t.Logf("annotations after DEL: %s", raw)
}
