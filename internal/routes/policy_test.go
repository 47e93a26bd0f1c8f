package routes

import (
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// The pod has net1 on A (subnet group A+C) and net2 on D (10.201.4.0/24, its own router leg).
// The router filters by reverse path, so a reply from net2's address that leaves by net1 (the
// main table's way to C) is dropped: peer C reaches net2's address only with policyRouting.
func TestPolicyRoutingRepliesLeaveByTheIngressInterface(t *testing.T) {
	tp := newTopology(t)
	tp.addBridge(t, "br1", "rd", "10.201.4.1/24")
	sh(t, tp.router, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")

	rt1 := &libcni.RuntimeConf{ContainerID: "pr", NetNS: nsPath(tp.pod), IfName: "net1"}
	net1 := tp.cni.list(t, conflist("dds", bridgePlugin("br0", tp.dataDir, tp.subnetA()),
		routesPlugin(map[string]any{"subnetGroups": ddsGroup(), "policyRouting": true})))
	res1, err := tp.cni.add(net1, rt1)
	if err != nil {
		t.Fatalf("net1 ADD: %v", err)
	}
	t.Cleanup(func() { _ = tp.cni.del(net1, rt1) })
	addr1 := res1.IPs[0].Address.IP.String()

	rangeD := [][]map[string]any{hostRange("10.201.4.0/24", "10.201.4.10", "10.201.4.1")}
	rt2 := &libcni.RuntimeConf{ContainerID: "pr", NetNS: nsPath(tp.pod), IfName: "net2"}
	for _, policy := range []bool{false, true} {
		net2 := tp.cni.list(t, conflist("side", bridgePlugin("br1", tp.dataDir, rangeD),
			routesPlugin(map[string]any{"policyRouting": policy})))
		res2, err := tp.cni.add(net2, rt2)
		if err != nil {
			t.Fatalf("net2 ADD (policyRouting=%v): %v", policy, err)
		}
		addr2 := res2.IPs[0].Address.IP.String()
		if err := ping(tp.peerC, addr1); err != nil {
			t.Errorf("policyRouting=%v: net1 address: %v", policy, err)
		}
		err = ping(tp.peerC, addr2)
		switch {
		case policy && err != nil:
			t.Errorf("with policyRouting, net2 address unreachable from peer C: %v", err)
		case !policy && err == nil:
			t.Fatal("net2 address answered without policyRouting: the router does not filter, the test proves nothing")
		}
		if policy {
			if err := tp.cni.check(net2, rt2); err != nil {
				t.Errorf("CHECK: %v", err)
			}
		}
		if err := tp.cni.del(net2, rt2); err != nil {
			t.Fatalf("net2 DEL: %v", err)
		}
		if policy {
			if rules := sh(t, tp.pod, "ip", "rule", "show", "from", addr2); rules != "" {
				t.Errorf("DEL left rules: %s", rules)
			}
		}
	}
	if err := ping(tp.peerB, addr1); err != nil {
		t.Errorf("peer B to net1 address: %v", err)
	}
}
