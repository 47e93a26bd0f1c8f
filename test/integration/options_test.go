package integration

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/multinet/multinet/internal/testbed"
)

// testStatusReportsReadiness: CNI STATUS answers from the daemon, and says so when it is down.
func testStatusReportsReadiness(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	if err := e.Runtime.GetStatusNetworkList(testbed.Ctx(t), e.Conflist(t)); err != nil {
		t.Fatalf("STATUS of a ready node: %v\n%s", err, e.Log())
	}
	e.Stop()
	err := e.Runtime.GetStatusNetworkList(testbed.Ctx(t), e.Conflist(t))
	if err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("STATUS with multinetd down = %v, want 'not reachable'", err)
	}
}

// testPerPodDefaultNetworkAndConfFileNAD: v1.multus-cni.io/default-network replaces the
// cluster network for one pod, and a NAD with an empty spec.config names a conf file.
func testPerPodDefaultNetworkAndConfFileNAD(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	t.Cleanup(func() { testbed.DeleteLink("mnf" + e.ID) })
	// A conf in the node's conf dir that is not the first one: found by name only.
	testbed.WriteFile(t, filepath.Join(e.ConfDir, "50-fromfile.conf"), e.bridgeNAD("fromfile", "mnf"+e.ID, "10.10.6.0/24"))
	cp.CreateNAD(t, e.ns, "fromfile", "")
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{
		"v1.multus-cni.io/default-network": e.ns + "/blue",
		"alpha.network.k8s.io/networks":    "fromfile",
	})
	e.MustAdd(t, sb)
	if got, want := testbed.Links(t, sb.Netns), []string{"eth0", "net1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("interfaces %v, want %v", got, want)
	}
	if ip := testbed.IPv4(t, sb.Netns, "eth0"); !strings.HasPrefix(ip.String(), "10.10.1.") {
		t.Errorf("eth0 has %s, want an address of the pod's default network blue (10.10.1.0/24)", ip)
	}
	if ip := testbed.IPv4(t, sb.Netns, "net1"); !strings.HasPrefix(ip.String(), "10.10.6.") {
		t.Errorf("net1 has %s, want an address of the conf-file network (10.10.6.0/24)", ip)
	}
	st := e.NetworkStatus(t, sb, 2)
	if st[0].Name != e.ns+"/blue" || !st[0].Default || st[1].Name != e.ns+"/fromfile" {
		t.Errorf("network-status %+v", st)
	}
	e.MustDel(t, sb)
	if got := testbed.Allocations(t, e.IPAMDir); len(got) != 0 {
		t.Errorf("addresses leaked: %v", got)
	}
}
