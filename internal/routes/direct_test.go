package routes

import (
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// linkPod is a pod netns whose net1 (one end of a veth pair kept inside it) has the addresses,
// and the result an IPAM would have returned for it.
func linkPod(t testing.TB, addrs ...string) (string, *types100.Result) {
	t.Helper()
	needRoot(t)
	pod := newNetns(t, "pod")
	sh(t, pod, "ip", "link", "add", "net1", "type", "veth", "peer", "name", "net1p")
	sh(t, pod, "ip", "link", "set", "net1p", "up")
	sh(t, pod, "ip", "link", "set", "net1", "up")
	res := &types100.Result{CNIVersion: "1.0.0", Interfaces: []*types100.Interface{{Name: "net1", Sandbox: nsPath(pod)}}}
	zero := 0
	for _, a := range addrs {
		sh(t, pod, "ip", "addr", "add", a, "dev", "net1")
		ip, n, _ := net.ParseCIDR(a)
		res.IPs = append(res.IPs, &types100.IPConfig{Interface: &zero, Address: net.IPNet{IP: ip, Mask: n.Mask}})
	}
	return pod, res
}

func TestChainedAddTwiceLeavesOneRouteAndDelRemovesOnlyItsOwn(t *testing.T) {
	pod, prev := linkPod(t, "10.201.1.10/24", "fd00:201:1::10/64")
	// Routes that are not the plugin's: one from "IPAM", one to a group prefix added by hand.
	sh(t, pod, "ip", "route", "add", "10.201.50.0/24", "via", "10.201.1.1", "proto", "boot")
	sh(t, pod, "ip", "route", "add", "10.201.3.0/24", "via", "10.201.1.254", "proto", "static")
	_, ipamRoute, _ := net.ParseCIDR("10.201.50.0/24")
	prev.Routes = append(prev.Routes, &types.Route{Dst: *ipamRoute, GW: net.ParseIP("10.201.1.1")})
	conf := routesPlugin(map[string]any{"subnetGroups": ddsGroup()})

	first, err := invokePlugin(t, "ADD", nsPath(pod), "net1", conf, prev)
	if err != nil {
		t.Fatalf("first ADD: %v", err)
	}
	second, err := invokePlugin(t, "ADD", nsPath(pod), "net1", conf, prev)
	if err != nil {
		t.Fatalf("second ADD: %v", err)
	}
	if !reflect.DeepEqual(first.Routes, second.Routes) {
		t.Errorf("second ADD result differs:\n%v\n%v", first.Routes, second.Routes)
	}
	ours := routesOf(t, pod, "-4", "", "proto", "109") + routesOf(t, pod, "-6", "", "proto", "109")
	want := "10.201.2.0/24 via 10.201.1.1 dev net1 \nfd00:201:2::/64 via fd00:201:1::1 dev net1 metric 1024 pref medium\n"
	if ours != want {
		t.Errorf("plugin routes after ADD twice:\n%s\nwant:\n%s", ours, want)
	}
	for _, r := range first.Routes {
		if r.Dst.String() == "10.201.3.0/24" {
			t.Errorf("result claims the hand-made route to 10.201.3.0/24: %v", r)
		}
	}
	if err := invokePlugin2(t, "CHECK", pod, conf, first); err != nil {
		t.Errorf("CHECK: %v", err)
	}

	if err := invokePlugin2(t, "DEL", pod, conf, first); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if err := invokePlugin2(t, "DEL", pod, conf, first); err != nil {
		t.Fatalf("second DEL: %v", err)
	}
	left := routesOf(t, pod, "-4", "net1") + routesOf(t, pod, "-6", "net1")
	for _, gone := range []string{"10.201.2.0/24", "fd00:201:2::/64"} {
		if strings.Contains(left, gone) {
			t.Errorf("DEL left the plugin's route to %s:\n%s", gone, left)
		}
	}
	for _, kept := range []string{"10.201.50.0/24 via 10.201.1.1", "10.201.3.0/24 via 10.201.1.254", "10.201.1.0/24 proto kernel"} {
		if !strings.Contains(left, kept) {
			t.Errorf("DEL removed %q, which is not the plugin's:\n%s", kept, left)
		}
	}
}

func invokePlugin2(t *testing.T, command, pod string, conf map[string]any, prev *types100.Result) error {
	_, err := invokePlugin(t, command, nsPath(pod), "net1", conf, prev)
	return err
}

func TestAddressInNoSubnetIsNoop(t *testing.T) {
	pod, prev := linkPod(t, "192.168.77.5/24")
	res, err := invokePlugin(t, "ADD", nsPath(pod), "net1", routesPlugin(map[string]any{"subnetGroups": ddsGroup()}), prev)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if len(res.Routes) != 0 {
		t.Errorf("result routes = %v, want none", res.Routes)
	}
	if ours := routesOf(t, pod, "-4", "", "proto", "109"); ours != "" {
		t.Errorf("routes added: %s", ours)
	}
}

func TestBadGatewayOrInterfaceIsClearError(t *testing.T) {
	pod, prev := linkPod(t, "10.201.1.10/24")
	offNet := map[string]any{"g": map[string]any{"subnets": map[string]any{
		"10.201.1.0/24": map[string]string{"gw": "10.201.9.1"},
		"10.201.2.0/24": map[string]string{"gw": "10.201.2.1"},
	}}}
	cases := []struct {
		name, ifname string
		conf         map[string]any
		want         string
	}{
		{"subnet group gateway off the interface's network", "net1", map[string]any{"subnetGroups": offNet},
			`subnet group "g": gateway 10.201.9.1 of subnet 10.201.1.0/24 is not on the directly reachable network 10.201.1.0/24 of address 10.201.1.10`},
		{"addRoutes gateway off the interface's network", "net1",
			map[string]any{"addRoutes": []map[string]string{{"dst": "10.9.0.0/16", "gw": "10.201.9.9"}}},
			"addRoutes[0]: gateway 10.201.9.9 is not on a directly reachable network of the interface"},
		{"unknown interface", "nope0", map[string]any{"subnetGroups": ddsGroup()}, `interface "nope0"`},
		{"malformed CIDR", "net1", map[string]any{"addRoutes": []map[string]string{{"dst": "10.9.0.0/40"}}},
			`addRoutes[0].dst: invalid CIDR "10.9.0.0/40"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := invokePlugin(t, "ADD", nsPath(pod), tc.ifname, routesPlugin(tc.conf), prev)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ADD error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if ours := routesOf(t, pod, "-4", "", "proto", "109"); ours != "" {
		t.Errorf("failed ADDs left routes: %s", ours)
	}
}
