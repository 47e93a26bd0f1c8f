package integration

import (
	"errors"
	"reflect"
	"strings"
	"testing"

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
func (e *env) attached(t *testing.T, name string) *sandbox {
	t.Helper()
	sb := e.newSandbox(t, e.ns, name, map[string]string{networks: "blue,green"})
	e.mustAdd(t, sb)
	if len(allocations(t, e.ipamDir)) != 3 {
		t.Fatalf("expected 3 addresses allocated (cluster, blue, green), got %v", allocations(t, e.ipamDir))
	}
	return sb
}

// assertClean checks that nothing of the sandboxes is left: IPs, records, host veths.
func (e *env) assertClean(t *testing.T) {
	t.Helper()
	if got := allocations(t, e.ipamDir); len(got) != 0 {
		t.Errorf("addresses leaked: %v", got)
	}
	if got := e.checkpoints(t); len(got) != 0 {
		t.Errorf("checkpoint records left: %v", got)
	}
	for _, br := range []string{"mnc", "mnb", "mnd"} {
		if n := vethsOn(t, br+e.id); n != 0 {
			t.Errorf("%d veths left on %s", n, br+e.id)
		}
	}
}

func testDelAfterNADDeleted(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.attached(t, "p")
	for _, nad := range []string{"blue", "green"} {
		if err := cp.NADClient.K8sCniCncfIoV1().NetworkAttachmentDefinitions(e.ns).Delete(ctx(t), nad, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.mustDel(t, sb)
	e.assertClean(t)
}

func testDelAfterPodDeleted(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.attached(t, "p")
	if err := cp.Client.CoreV1().Pods(e.ns).Delete(ctx(t), "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.mustDel(t, sb)
	e.assertClean(t)
}

func testDelWithAPIServerStopped(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.attached(t, "p")
	cp.StopAPIServer(t)
	defer cp.StartAPIServer(t)
	e.mustDel(t, sb)
	e.assertClean(t)
}

func testDelWithNetnsRemoved(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.attached(t, "p")
	if err := sb.netns.Close(); err != nil {
		t.Fatal(err)
	}
	if err := testutils.UnmountNS(sb.netns); err != nil {
		t.Fatal(err)
	}
	rt := e.rt(sb)
	rt.NetNS = "" // the runtime passes no netns once it is gone
	if err := e.runtime.DelNetworkList(ctx(t), e.conflist(t), rt); err != nil {
		t.Fatalf("DEL with the netns gone: %v\n%s", err, e.log())
	}
	e.assertClean(t)
}

func testDelTwice(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.attached(t, "p")
	e.mustDel(t, sb)
	e.mustDel(t, sb)
	e.assertClean(t)
}

func testCheckDetectsRemovedInterface(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.attached(t, "p")
	if err := e.check(t, sb); err != nil {
		t.Fatalf("CHECK of a healthy pod: %v\n%s", err, e.log())
	}
	err := sb.netns.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName("net2")
		if err != nil {
			return err
		}
		return netlink.LinkDel(l)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = e.check(t, sb)
	if err == nil || !strings.Contains(err.Error(), "green") || !strings.Contains(err.Error(), "net2") {
		t.Fatalf("CHECK after net2 was removed = %v, want an error naming network green and net2", err)
	}
	e.mustDel(t, sb)
	e.assertClean(t)
}

func testFailingThirdDelegateRollsBack(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	t.Cleanup(func() { deleteLink("mnx" + e.id) })
	broken := `{"cniVersion":"1.0.0","name":"broken","plugins":[` +
		strings.TrimSuffix(strings.TrimPrefix(e.bridgeNAD("broken", "mnx"+e.id, "10.10.9.0/24"), ""), "") +
		`,{"type":"tuning","sysctl":{"net.ipv4.conf.IFNAME.no_such_knob":"1"}}]}`
	cp.CreateNAD(t, e.ns, "broken", broken)
	sb := e.newSandbox(t, e.ns, "p", map[string]string{networks: "blue,green,broken"})
	_, err := e.add(t, sb)
	if err == nil {
		t.Fatal("ADD with a failing third delegate succeeded")
	}
	for _, want := range []string{e.ns + "/p", "broken", "no_such_knob"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ADD error %q does not mention %q", err, want)
		}
	}
	if got := links(t, sb.netns); len(got) != 0 {
		t.Errorf("interfaces left in the pod after rollback: %v", got)
	}
	if n := vethsOn(t, "mnx"+e.id); n != 0 {
		t.Errorf("%d veths left on the broken network's bridge", n)
	}
	e.assertClean(t)
	evs := e.waitEvent(t, sb.pod, "NetworkSetupFailed")
	for _, ev := range evs {
		if ev.Reason == "NetworkSetupFailed" && (ev.Type != "Warning" || !strings.Contains(ev.Message, "no_such_knob")) {
			t.Errorf("event %s %q lacks the delegate's message", ev.Type, ev.Message)
		}
	}
	e.mustDel(t, sb) // the runtime's DEL after a failed ADD succeeds
}

func testNamespaceIsolation(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	other := "o-" + e.id
	cp.CreateNamespace(t, other)
	t.Cleanup(func() { deleteLink("mno" + e.id); deleteLink("mng" + e.id) })
	cp.CreateNAD(t, other, "private", e.bridgeNAD("private", "mno"+e.id, "10.10.4.0/24"))
	cp.CreateNAD(t, "global", "shared-"+e.id, e.bridgeNAD("shared", "mng"+e.id, "10.10.5.0/24"))
	denied := e.newSandbox(t, e.ns, "denied", map[string]string{networks: other + "/private"})
	_, err := e.add(t, denied)
	if err == nil || !strings.Contains(err.Error(), "global namespace") {
		t.Fatalf("ADD using another namespace's NAD = %v, want a namespace isolation error", err)
	}
	e.waitEvent(t, denied.pod, "InvalidNetworkSelection")
	allowed := e.newSandbox(t, e.ns, "allowed", map[string]string{networks: "global/shared-" + e.id})
	e.mustAdd(t, allowed)
	if got, want := links(t, allowed.netns), []string{"eth0", "net1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("interfaces %v, want %v", got, want)
	}
	e.mustDel(t, allowed)
	e.mustDel(t, denied)
	if got := allocations(t, e.ipamDir); len(got) != 0 {
		t.Errorf("addresses leaked: %v", got)
	}
}

func testTraversalTypeRejected(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	cp.CreateNAD(t, e.ns, "evil", `{"cniVersion":"1.0.0","name":"evil","type":"../../../bin/sh"}`)
	sb := e.newSandbox(t, e.ns, "p", map[string]string{networks: "evil"})
	_, err := e.add(t, sb)
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || !strings.Contains(err.Error(), "evil") || !strings.Contains(err.Error(), "plain binary name") {
		t.Fatalf("ADD with a path-traversing plugin type = %v, want a rejection naming the network", err)
	}
	if got := links(t, sb.netns); len(got) != 0 {
		t.Errorf("interfaces created although the selection was rejected: %v", got)
	}
	e.mustDel(t, sb)
	e.assertClean(t)
}

func testDaemonDownIsRetriable(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	sb := e.newSandbox(t, e.ns, "p", nil)
	e.stop()
	_, err := e.add(t, sb)
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != types.ErrTryAgainLater || !strings.Contains(cniErr.Msg, "not reachable") {
		t.Fatalf("ADD with multinetd down = %#v, want CNI error 11 saying the daemon is not reachable", err)
	}
	if _, err := libcni.ConfListFromFile(e.confDir + "/00-multinet.conflist"); err != nil {
		t.Fatalf("multinet's conflist must stay on disk while the daemon is down: %v", err)
	}
}
