package integration

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/testbed"
)

// attached creates a pod on blue and green and attaches it.
func (e *env) attached(t *testing.T, name string) *testbed.Sandbox {
	t.Helper()
	sb := e.NewSandbox(t, e.ns, name, map[string]string{networks: "blue,green"})
	e.MustAdd(t, sb)
	if len(testbed.Allocations(t, e.IPAMDir)) != 3 {
		t.Fatalf("expected 3 addresses allocated (cluster, blue, green), got %v", testbed.Allocations(t, e.IPAMDir))
	}
	return sb
}

// assertClean checks that nothing of the sandboxes is left: IPs, records, host veths.
func (e *env) assertClean(t *testing.T) {
	t.Helper()
	if got := testbed.Allocations(t, e.IPAMDir); len(got) != 0 {
		t.Errorf("addresses leaked: %v", got)
	}
	if got := e.Checkpoints(t); len(got) != 0 {
		t.Errorf("checkpoint records left: %v", got)
	}
	for _, br := range []string{"mnc", "mnb", "mnd"} {
		if n := testbed.VethsOn(t, br+e.ID); n != 0 {
			t.Errorf("%d veths left on %s", n, br+e.ID)
		}
	}
}

func testDelAfterNADDeleted(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.attached(t, "p")
	for _, nad := range []string{"blue", "green"} {
		if err := cp.NADClient.K8sCniCncfIoV1().NetworkAttachmentDefinitions(e.ns).Delete(testbed.Ctx(t), nad, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.MustDel(t, sb)
	e.assertClean(t)
}

func testDelAfterPodDeleted(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.attached(t, "p")
	if err := cp.Client.CoreV1().Pods(e.ns).Delete(testbed.Ctx(t), "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.MustDel(t, sb)
	e.assertClean(t)
}

func testDelWithAPIServerStopped(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.attached(t, "p")
	cp.StopAPIServer(t)
	defer cp.StartAPIServer(t)
	e.MustDel(t, sb)
	e.assertClean(t)
}

func testDelWithNetnsRemoved(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.attached(t, "p")
	removeNetns(t, sb)
	rt := e.RuntimeConf(sb)
	rt.NetNS = "" // the runtime passes no netns once it is gone
	if err := e.Runtime.DelNetworkList(testbed.Ctx(t), e.Conflist(t), rt); err != nil {
		t.Fatalf("DEL with the netns gone: %v\n%s", err, e.Log())
	}
	e.assertClean(t)
}

func testDelTwice(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.attached(t, "p")
	e.MustDel(t, sb)
	e.MustDel(t, sb)
	e.assertClean(t)
}

func testCheckDetectsRemovedInterface(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.attached(t, "p")
	if err := e.Check(t, sb); err != nil {
		t.Fatalf("CHECK of a healthy pod: %v\n%s", err, e.Log())
	}
	err := sb.Netns.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName("net2")
		if err != nil {
			return err
		}
		return netlink.LinkDel(l)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Check(t, sb)
	if err == nil || !strings.Contains(err.Error(), "green") || !strings.Contains(err.Error(), "net2") {
		t.Fatalf("CHECK after net2 was removed = %v, want an error naming network green and net2", err)
	}
	e.MustDel(t, sb)
	e.assertClean(t)
}

func testFailingThirdDelegateRollsBack(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	t.Cleanup(func() { testbed.DeleteLink("mnx" + e.ID) })
	broken := `{"cniVersion":"1.0.0","name":"broken","plugins":[` +
		strings.TrimSuffix(strings.TrimPrefix(e.bridgeNAD("broken", "mnx"+e.ID, "10.10.9.0/24"), ""), "") +
		`,{"type":"tuning","sysctl":{"net.ipv4.conf.IFNAME.no_such_knob":"1"}}]}`
	cp.CreateNAD(t, e.ns, "broken", broken)
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "blue,green,broken"})
	_, err := e.Add(t, sb)
	if err == nil {
		t.Fatal("ADD with a failing third delegate succeeded")
	}
	for _, want := range []string{e.ns + "/p", "broken", "no_such_knob"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ADD error %q does not mention %q", err, want)
		}
	}
	if got := testbed.Links(t, sb.Netns); len(got) != 0 {
		t.Errorf("interfaces left in the pod after rollback: %v", got)
	}
	if n := testbed.VethsOn(t, "mnx"+e.ID); n != 0 {
		t.Errorf("%d veths left on the broken network's bridge", n)
	}
	e.assertClean(t)
	evs := e.WaitEvent(t, sb.Pod, "NetworkSetupFailed")
	for _, ev := range evs {
		if ev.Reason == "NetworkSetupFailed" && (ev.Type != "Warning" || !strings.Contains(ev.Message, "no_such_knob")) {
			t.Errorf("event %s %q lacks the delegate's message", ev.Type, ev.Message)
		}
	}
	e.MustDel(t, sb) // the runtime's DEL after a failed ADD succeeds
}

// testOtherNamespacesByDefault: without namespaceIsolation (the default, as in Multus), a pod
// may use a NAD of any namespace, `ns/name`, as the NPWG spec allows.
func testOtherNamespacesByDefault(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	other := "d-" + e.ID
	cp.CreateNamespace(t, other)
	t.Cleanup(func() { testbed.DeleteLink("mno" + e.ID) })
	cp.CreateNAD(t, other, "shared", e.bridgeNAD("shared", "mno"+e.ID, "10.10.4.0/24"))
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: other + "/shared"})
	e.MustAdd(t, sb)
	if got, want := testbed.Links(t, sb.Netns), []string{"eth0", "net1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("interfaces %v, want %v", got, want)
	}
	if st := e.NetworkStatus(t, sb, 2); st[1].Name != other+"/shared" {
		t.Errorf("network-status %+v, want net1 on %s/shared", st, other)
	}
	e.MustDel(t, sb)
	e.assertClean(t)
}

// testNamespaceIsolation: with namespaceIsolation on, a pod uses NADs of its own namespace and
// of the global namespaces only.
func testNamespaceIsolation(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp, "--namespace-isolation")
	other := "o-" + e.ID
	cp.CreateNamespace(t, other)
	t.Cleanup(func() { testbed.DeleteLink("mno" + e.ID); testbed.DeleteLink("mng" + e.ID) })
	cp.CreateNAD(t, other, "private", e.bridgeNAD("private", "mno"+e.ID, "10.10.4.0/24"))
	cp.CreateNAD(t, "global", "shared-"+e.ID, e.bridgeNAD("shared", "mng"+e.ID, "10.10.5.0/24"))
	denied := e.NewSandbox(t, e.ns, "denied", map[string]string{networks: other + "/private"})
	_, err := e.Add(t, denied)
	if err == nil || !strings.Contains(err.Error(), "global namespace") {
		t.Fatalf("ADD using another namespace's NAD = %v, want a namespace isolation error", err)
	}
	e.WaitEvent(t, denied.Pod, "InvalidNetworkSelection")
	allowed := e.NewSandbox(t, e.ns, "allowed", map[string]string{networks: "global/shared-" + e.ID})
	e.MustAdd(t, allowed)
	if got, want := testbed.Links(t, allowed.Netns), []string{"eth0", "net1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("interfaces %v, want %v", got, want)
	}
	e.MustDel(t, allowed)
	e.MustDel(t, denied)
	if got := testbed.Allocations(t, e.IPAMDir); len(got) != 0 {
		t.Errorf("addresses leaked: %v", got)
	}
}

func testTraversalTypeRejected(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	cp.CreateNAD(t, e.ns, "evil", `{"cniVersion":"1.0.0","name":"evil","type":"../../../bin/sh"}`)
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "evil"})
	_, err := e.Add(t, sb)
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || !strings.Contains(err.Error(), "evil") || !strings.Contains(err.Error(), "plain binary name") {
		t.Fatalf("ADD with a path-traversing plugin type = %v, want a rejection naming the network", err)
	}
	if got := testbed.Links(t, sb.Netns); len(got) != 0 {
		t.Errorf("interfaces created although the selection was rejected: %v", got)
	}
	e.MustDel(t, sb)
	e.assertClean(t)
}

func testDaemonDownIsRetriable(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	sb := e.NewSandbox(t, e.ns, "p", nil)
	e.Stop()
	_, err := e.Add(t, sb)
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != types.ErrTryAgainLater || !strings.Contains(cniErr.Msg, "not reachable") {
		t.Fatalf("ADD with multinetd down = %#v, want CNI error 11 saying the daemon is not reachable", err)
	}
	if _, err := libcni.ConfListFromFile(e.ConfDir + "/00-multinet.conflist"); err != nil {
		t.Fatalf("multinet's conflist must stay on disk while the daemon is down: %v", err)
	}
	// A daemon that comes back within the shim's wait (a DaemonSet rollout): the ADD waits
	// for it and succeeds, instead of failing the sandbox.
	errc := make(chan error, 1)
	go func() { _, err := e.Add(t, sb); errc <- err }()
	time.Sleep(2 * time.Second)
	e.Start(t)
	if err := <-errc; err != nil {
		t.Fatalf("ADD during a daemon restart: %v\n%s", err, e.Log())
	}
	e.MustDel(t, sb)
}

// removeNetns removes the sandbox's network namespace, as a runtime does when it goes.
func removeNetns(t *testing.T, sb *testbed.Sandbox) {
	t.Helper()
	if err := sb.Netns.Close(); err != nil {
		t.Fatal(err)
	}
	if err := testutils.UnmountNS(sb.Netns); err != nil {
		t.Fatal(err)
	}
}
