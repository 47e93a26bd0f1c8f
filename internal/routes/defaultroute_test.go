package routes

import (
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

func TestMoveDefaultRouteKeepsClusterRoutes(t *testing.T) {
	tp := newTopology(t)
	rt := &libcni.RuntimeConf{ContainerID: "dr1", NetNS: nsPath(tp.pod), IfName: "net1"}
	list := tp.cni.list(t, conflist("dds", bridgePlugin("br0", tp.dataDir, tp.subnetA())))
	if _, err := tp.cni.add(list, rt); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = tp.cni.del(list, rt) })
	if err := ping(tp.pod, "10.201.3.2"); err == nil {
		t.Fatal("peer C reachable before the default route moved: the test proves nothing")
	}

	for i := 0; i < 2; i++ { // the second call must change nothing
		if err := MoveDefaultRoute(nsPath(tp.pod), "net1", net.ParseIP("10.201.1.1")); err != nil {
			t.Fatalf("MoveDefaultRoute #%d: %v", i+1, err)
		}
		got := strings.TrimSpace(routesOf(t, tp.pod, "-4", "", "default"))
		if got != "default via 10.201.1.1 dev net1 proto 109" {
			t.Fatalf("after move #%d default routes = %q", i+1, got)
		}
	}
	if err := MoveDefaultRoute(nsPath(tp.pod), "net1", net.ParseIP("fd00:201:1::1")); err != nil {
		t.Fatalf("MoveDefaultRoute v6: %v", err)
	}
	// Beyond the secondary gateway (v4 and v6) and on the cluster network, both work.
	for _, dst := range []string{"10.201.3.2", "fd00:201:2::2", "10.201.98.1", "10.201.99.1"} {
		if err := ping(tp.pod, dst); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(routesOf(t, tp.pod, "-4", "eth0"), "10.201.98.0/24 via 10.201.99.1") {
		t.Error("eth0's cluster route is gone")
	}
}

func TestMoveDefaultRouteErrorsKeepTheOldDefault(t *testing.T) {
	tp := newTopology(t)
	rt := &libcni.RuntimeConf{ContainerID: "dr2", NetNS: nsPath(tp.pod), IfName: "net1"}
	list := tp.cni.list(t, conflist("dds", bridgePlugin("br0", tp.dataDir, tp.subnetA())))
	if _, err := tp.cni.add(list, rt); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = tp.cni.del(list, rt) })
	err := MoveDefaultRoute(nsPath(tp.pod), "net1", net.ParseIP("10.201.7.1"))
	if err == nil || !strings.Contains(err.Error(), `default-route: gateway 10.201.7.1 is not directly reachable on interface "net1"`) {
		t.Errorf("unreachable gateway: error = %v", err)
	}
	err = MoveDefaultRoute(nsPath(tp.pod), "net9", net.ParseIP("10.201.1.1"))
	if err == nil || !strings.Contains(err.Error(), `default-route: interface "net9"`) {
		t.Errorf("unknown interface: error = %v", err)
	}
	if got := strings.TrimSpace(routesOf(t, tp.pod, "-4", "", "default")); got != podDefault {
		t.Errorf("failed moves changed the default route: %q", got)
	}
}
