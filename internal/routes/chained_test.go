package routes

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

func TestSubnetGroupMakesPeersReachableAndKeepsEth0Default(t *testing.T) {
	tp := newTopology(t)
	rt := &libcni.RuntimeConf{ContainerID: "sg1", NetNS: nsPath(tp.pod), IfName: "net1"}
	bridge := bridgePlugin("br0", tp.dataDir, tp.subnetA())

	plain := tp.cni.list(t, conflist("dds", bridge))
	if _, err := tp.cni.add(plain, rt); err != nil {
		t.Fatalf("plain ADD: %v", err)
	}
	if err := ping(tp.pod, "10.201.2.2"); err == nil {
		t.Fatal("peer B reachable without the subnet group: the test proves nothing")
	}
	if err := tp.cni.del(plain, rt); err != nil {
		t.Fatalf("plain DEL: %v", err)
	}

	routed := tp.cni.list(t, conflist("dds", bridge, routesPlugin(map[string]any{"subnetGroups": ddsGroup()})))
	res, err := tp.cni.add(routed, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	for _, peer := range []string{"10.201.2.2", "10.201.3.2", "fd00:201:2::2"} {
		if err := ping(tp.pod, peer); err != nil {
			t.Error(err)
		}
	}
	var recorded []string
	for _, r := range res.Routes {
		recorded = append(recorded, r.Dst.String()+" via "+r.GW.String())
	}
	want := "10.201.2.0/24 via 10.201.1.1,10.201.3.0/24 via 10.201.1.1,fd00:201:2::/64 via fd00:201:1::1"
	if got := strings.Join(recorded, ","); got != want {
		t.Errorf("result routes = %s, want %s", got, want)
	}
	if got := routesOf(t, tp.pod, "-4", "", "default"); strings.TrimSpace(got) != podDefault {
		t.Errorf("eth0 default route changed: %q", got)
	}
	if err := tp.cni.check(routed, rt); err != nil {
		t.Errorf("CHECK after ADD: %v", err)
	}

	sh(t, tp.pod, "ip", "route", "del", "10.201.3.0/24")
	if err := tp.cni.check(routed, rt); err == nil || !strings.Contains(err.Error(), "10.201.3.0") {
		t.Errorf("chain CHECK after removing a route by hand = %v, want a failure naming 10.201.3.0/24", err)
	}
	// The delegate checks the result's routes first; our plugin's own verdict, alone:
	_, err = invokePlugin(t, "CHECK", nsPath(tp.pod), "net1", routesPlugin(map[string]any{"subnetGroups": ddsGroup()}), res)
	if err == nil || !strings.Contains(err.Error(), `subnetGroups["dds"]: route to 10.201.3.0/24 via 10.201.1.1 dev net1 is missing`) {
		t.Errorf("plugin CHECK after removing a route by hand = %v, want it to name the route", err)
	}

	if err := tp.cni.del(routed, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if left := routesOf(t, tp.pod, "-4", "", "proto", "109"); left != "" {
		t.Errorf("routes left after DEL: %s", left)
	}
	if got := routesOf(t, tp.pod, "-4", "", "default"); strings.TrimSpace(got) != podDefault {
		t.Errorf("eth0 default route changed by DEL: %q", got)
	}
}

func TestRouteOverrideFieldsOnConflist(t *testing.T) {
	tp := newTopology(t)
	v4Only := [][]map[string]any{hostRange("10.201.1.0/24", "10.201.1.10", "10.201.1.1")}
	cases := []struct {
		name       string
		ipamRoutes []map[string]any
		fields     map[string]any
		present    []string // `ip -4 route` lines (without proto) that must be on net1
		absent     []string // destinations that must not be on net1
		gateway    bool     // whether the result keeps the IP's gateway
		defaults   int      // default routes left in the result
	}{
		{name: "delroutes then addroutes (lower-case names, gw defaults to the IPAM gateway)",
			ipamRoutes: []map[string]any{{"dst": "10.201.60.0/24"}, {"dst": "10.201.61.0/24"}},
			fields: map[string]any{"delroutes": []map[string]string{{"dst": "10.201.60.0/24"}},
				"addroutes": []map[string]string{{"dst": "10.201.3.0/24"}}},
			present: []string{"10.201.61.0/24 via 10.201.1.1", "10.201.3.0/24 via 10.201.1.1"},
			absent:  []string{"10.201.60.0/24"}, gateway: true},
		{name: "flushroutes as a string keeps the connected route",
			ipamRoutes: []map[string]any{{"dst": "10.201.60.0/24"}},
			fields:     map[string]any{"flushroutes": "true"},
			present:    []string{"10.201.1.0/24"}, absent: []string{"10.201.60.0/24"}, gateway: true},
		{name: "flushgateway removes the IPAM default on net1 only",
			ipamRoutes: []map[string]any{{"dst": "0.0.0.0/0"}},
			fields:     map[string]any{"flushgateway": true},
			absent:     []string{"default"}, gateway: true},
		{name: "ignoreGateway drops the IPAM default and its gateway",
			ipamRoutes: []map[string]any{{"dst": "0.0.0.0/0"}},
			fields:     map[string]any{"ignoreGateway": true},
			absent:     []string{"default"}, gateway: false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rt := &libcni.RuntimeConf{ContainerID: "ro" + string(rune('a'+i)), NetNS: nsPath(tp.pod), IfName: "net1"}
			list := tp.cni.list(t, conflist("ro", bridgePlugin("br0", tp.dataDir, v4Only, tc.ipamRoutes...), routesPlugin(tc.fields)))
			res, err := tp.cni.add(list, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			t.Cleanup(func() { _ = tp.cni.del(list, rt) })
			onNet1 := routesOf(t, tp.pod, "-4", "net1")
			for _, p := range tc.present {
				if !strings.Contains(onNet1, p) {
					t.Errorf("route %q missing on net1:\n%s", p, onNet1)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(onNet1, a) {
					t.Errorf("route to %s still on net1:\n%s", a, onNet1)
				}
			}
			if got := strings.TrimSpace(routesOf(t, tp.pod, "-4", "", "default")); got != podDefault {
				t.Errorf("default routes = %q, want only eth0's", got)
			}
			if (res.IPs[0].Gateway != nil) != tc.gateway {
				t.Errorf("result gateway = %v, want kept=%v", res.IPs[0].Gateway, tc.gateway)
			}
			for _, r := range res.Routes {
				if ones, _ := r.Dst.Mask.Size(); ones == 0 {
					t.Errorf("result still has default route %v", r)
				}
			}
			if err := tp.cni.check(list, rt); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			if err := tp.cni.del(list, rt); err != nil {
				t.Errorf("DEL: %v", err)
			}
		})
	}
}
