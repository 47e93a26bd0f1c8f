package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/multinet/multinet/internal/testbed"
)

// The routed lab every subtest builds, all of it in namespaces and bridges of its own:
//
//	pod net1 ── host bridge mna<id> ── router (a0 10.30.1.1/24)  ip_forward=1 in the router only
//	                                    ├── b0 10.30.2.1/24 ── peer B eth0 10.30.2.10/24
//	                                    └── c0 10.30.3.1/24 ── peer C eth0 10.30.3.10/24
//
// The peers route 10.30.1.0/24 back via the router. No address is on a host link, and the
// host's forwarding setting is never touched.
var (
	routerA = net.ParseIP("10.30.1.1")
	peerB   = net.ParseIP("10.30.2.10")
	peerC   = net.ParseIP("10.30.3.10")
)

// lab is the routed topology of one env.
type lab struct {
	bridge string // host bridge of subnet A, which the pods' bridge NADs use
	router ns.NetNS
}

func TestRoutesThroughCore(t *testing.T) {
	testbed.RequireRoot(t)
	forward := hostForwarding(t)
	t.Cleanup(func() {
		if got := hostForwarding(t); got != forward {
			t.Errorf("host net.ipv4.ip_forward changed from %s to %s", forward, got)
		}
	})
	cp := testbed.StartControlPlane(t)
	t.Run("SubnetGroupsViaNAD", func(t *testing.T) { testSubnetGroupsViaNAD(t, cp) })
	t.Run("DefaultRouteSelection", func(t *testing.T) { testDefaultRouteSelection(t, cp) })
	t.Run("PerPodRoutesViaCNIArgs", func(t *testing.T) { testPerPodRoutesViaCNIArgs(t, cp) })
}

// routesEnv is an env whose CNI bin dir also holds multinet-routes, installed by multinetd.
func routesEnv(t *testing.T, cp *testbed.ControlPlane) *env {
	t.Helper()
	e := newEnv(t, cp)
	// multinetd installs multinet-routes found beside the shim (--shim-source), as in the image.
	if _, err := os.Stat(filepath.Join(e.BinDir, "multinet-routes")); err != nil {
		t.Fatalf("multinetd did not install multinet-routes into the CNI bin dir: %v", err)
	}
	return e
}

func testSubnetGroupsViaNAD(t *testing.T, cp *testbed.ControlPlane) {
	e := routesEnv(t, cp)
	l := e.newLab(t)
	bridge := func(start, end string) string {
		return fmt.Sprintf(`{"type":"bridge","bridge":%q,"isGateway":false,"ipMasq":false,"ipam":{"type":"host-local",
			"dataDir":%q,"ranges":[[{"subnet":"10.30.1.0/24","rangeStart":%q,"rangeEnd":%q}]]}}`, l.bridge, e.IPAMDir, start, end)
	}
	group := `{"type":"multinet-routes","subnetGroups":{"lab":{"subnets":{
		"10.30.1.0/24":{"gw":"10.30.1.1"},"10.30.2.0/24":{"gw":"10.30.2.1"},"10.30.3.0/24":{"gw":"10.30.3.1"}}}}}`
	// Two NADs on the same bridge and subnet (disjoint ranges: host-local keeps a pool per
	// network name), one with the subnet group and one without.
	e.CP.CreateNAD(t, e.ns, "dds", `{"cniVersion":"1.0.0","name":"dds","plugins":[`+
		bridge("10.30.1.100", "10.30.1.149")+`,`+group+`]}`)
	e.CP.CreateNAD(t, e.ns, "plain", `{"cniVersion":"1.0.0","name":"plain","plugins":[`+
		bridge("10.30.1.200", "10.30.1.249")+`]}`)

	routed := e.NewSandbox(t, e.ns, "routed", map[string]string{networks: "dds"})
	control := e.NewSandbox(t, e.ns, "control", map[string]string{networks: "plain"})
	e.MustAdd(t, routed)
	// CHECK before another pod joins the bridges: the reference bridge plugin's CHECK compares
	// the bridge's MAC, which changes when a port with a lower MAC is added.
	if err := e.Check(t, routed); err != nil {
		t.Errorf("CHECK of the routed pod: %v\n%s", err, e.Log())
	}
	e.MustAdd(t, control)

	got := routeLines(t, routed.Netns)
	for _, want := range []string{"10.30.2.0/24 via 10.30.1.1 dev net1 proto 109", "10.30.3.0/24 via 10.30.1.1 dev net1 proto 109"} {
		if !slices.Contains(got, want) {
			t.Errorf("pod routes %q lack %q", got, want)
		}
	}
	for _, peer := range []net.IP{peerB, peerC} {
		if err := testbed.Ping(t, routed.Netns, peer); err != nil {
			t.Errorf("with the subnet group: %v", err)
		}
	}
	// The control pod shares the L2 segment (it reaches the router) but has no route on.
	if err := testbed.Ping(t, control.Netns, routerA); err != nil {
		t.Fatalf("control pod cannot reach the router on its own subnet: %v", err)
	}
	for _, peer := range []net.IP{peerB, peerC} {
		if err := testbed.Ping(t, control.Netns, peer); err == nil {
			t.Errorf("control pod (no multinet-routes) reached %s", peer)
		}
	}
	// eth0 is the cluster network's alone: the same routes as the control pod's, no default.
	if r, c := onDev(got, "eth0"), onDev(routeLines(t, control.Netns), "eth0"); !reflect.DeepEqual(r, c) || len(r) == 0 {
		t.Errorf("eth0 routes changed by the subnet group: %q, control pod has %q", r, c)
	}
	for _, r := range got {
		if strings.HasPrefix(r, "default") {
			t.Errorf("a default route appeared: %q", r)
		}
	}

	st := e.NetworkStatus(t, routed, 2)
	if st[0].Interface != "eth0" || !st[0].Default {
		t.Errorf("network-status[0] = %+v, want the default cluster network on eth0", st[0])
	}
	if ip := testbed.IPv4(t, routed.Netns, "net1").String(); st[1].Name != e.ns+"/dds" || st[1].Interface != "net1" ||
		st[1].Default || !slices.Equal(st[1].IPs, []string{ip}) {
		t.Errorf("network-status[1] = %+v, want %s/dds on net1 with %s", st[1], e.ns, ip)
	}

	e.MustDel(t, routed)
	e.MustDel(t, control)
	e.assertRoutesClean(t, l)
	// The lab itself is intact: DEL touched only what the pods had.
	if got := routeLines(t, l.router); !slices.Contains(got, "10.30.2.0/24 dev b0 proto 2") {
		t.Errorf("router's routes after DEL: %q", got)
	}
}

func testDefaultRouteSelection(t *testing.T, cp *testbed.ControlPlane) {
	e := routesEnv(t, cp)
	l := e.newLab(t)
	service := e.clusterWithRoutes(t)
	e.CP.CreateNAD(t, e.ns, "blue", e.bridgeNAD("blue", l.bridge, "10.30.1.0/24"))
	t.Cleanup(func() { testbed.DeleteLink("mnd" + e.ID) })
	e.CP.CreateNAD(t, e.ns, "green", e.bridgeNAD("green", "mnd"+e.ID, "10.30.5.0/24"))

	neighbor := e.NewSandbox(t, e.ns, "neighbor", nil)
	e.MustAdd(t, neighbor)
	// Without default-route the pod's default route is the cluster's, on eth0, and the
	// cluster gateway does not forward: peer B is out of reach.
	plain := e.NewSandbox(t, e.ns, "plain", map[string]string{networks: "blue"})
	e.MustAdd(t, plain)
	if got := routeLines(t, plain.Netns); !slices.Contains(got, "default via 10.30.244.1 dev eth0 proto 3") {
		t.Fatalf("the custom cluster network gave no default route on eth0: %q", got)
	}
	if err := testbed.Ping(t, plain.Netns, peerB); err == nil {
		t.Fatal("peer B reachable with the default route on eth0: the test proves nothing")
	}

	sb := e.NewSandbox(t, e.ns, "moved", map[string]string{networks: `[{"name":"blue","default-route":["10.30.1.1"]}]`})
	e.MustAdd(t, sb)
	got := routeLines(t, sb.Netns)
	var defaults []string
	for _, r := range got {
		if strings.HasPrefix(r, "default") {
			defaults = append(defaults, r)
		}
	}
	if want := []string{"default via 10.30.1.1 dev net1 proto 109"}; !reflect.DeepEqual(defaults, want) {
		t.Errorf("default routes %q, want %q (all routes %q)", defaults, want, got)
	}
	if !slices.Contains(got, "10.30.240.0/21 via 10.30.244.1 dev eth0 proto 3") {
		t.Errorf("eth0 lost the cluster route 10.30.240.0/21: %q", got)
	}
	for _, dst := range []net.IP{peerB, service, testbed.IPv4(t, neighbor.Netns, "eth0")} {
		if err := testbed.Ping(t, sb.Netns, dst); err != nil {
			t.Errorf("with the default route on net1: %v", err)
		}
	}
	st := e.NetworkStatus(t, sb, 2)
	if st[0].Interface != "eth0" || st[0].Default {
		t.Errorf("network-status[0] = %+v, want eth0 with default false", st[0])
	}
	if st[1].Interface != "net1" || st[1].Name != e.ns+"/blue" || !st[1].Default {
		t.Errorf("network-status[1] = %+v, want %s/blue on net1 with default true", st[1], e.ns)
	}
	if err := e.Check(t, sb); err != nil {
		t.Errorf("CHECK of the pod with the moved default route: %v\n%s", err, e.Log())
	}
	e.MustAdd(t, sb) // ADD repeated by the runtime: idempotent
	if got := routeLines(t, sb.Netns); !slices.Contains(got, "default via 10.30.1.1 dev net1 proto 109") {
		t.Errorf("after a repeated ADD: %q", got)
	}
	// Someone moves the default route back to eth0: CHECK notices (the plugins' CHECK would not).
	err := sb.Netns.Do(func(ns.NetNS) error {
		eth0, err := netlinksafe.LinkByName("eth0")
		if err != nil {
			return err
		}
		return netlink.RouteReplace(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP("10.30.244.1")})
	})
	if err != nil {
		t.Fatalf("moving the default route back by hand: %v", err)
	}
	if err := e.Check(t, sb); err == nil || !strings.Contains(err.Error(), "default route is not via 10.30.1.1 on net1") ||
		!strings.Contains(err.Error(), "/blue") {
		t.Errorf("CHECK after the default route left net1 = %v, want an error naming blue, net1 and the gateway", err)
	}

	// (After every CHECK: a port added to blue's bridge can change the bridge's MAC, which the
	// bridge plugin's CHECK compares with the one cached at ADD.)
	// Hot plug: "plain" asks for the default route on blue (a re-plug of blue), then no longer
	// does (a re-plug again): the default route it had on eth0 comes back.
	e.annotate(t, plain, `[{"name":"blue","default-route":["10.30.1.1"]}]`)
	waitRoute(t, plain, "default via 10.30.1.1 dev net1 proto 109")
	e.annotate(t, plain, "blue")
	waitRoute(t, plain, "default via 10.30.244.1 dev eth0 proto 109")
	if err := testbed.Ping(t, plain.Netns, peerB); err == nil {
		t.Error("peer B still reachable: the default route did not go back to eth0")
	}

	// Two elements asking for the default route: rejected before anything is attached.
	two := e.NewSandbox(t, e.ns, "two", map[string]string{networks: `[{"name":"blue","default-route":["10.30.1.1"]},` +
		`{"name":"green","default-route":["10.30.5.1"]}]`})
	_, err = e.Add(t, two)
	if err == nil {
		t.Fatal("ADD with two default-route elements succeeded")
	}
	// The annotation check names the second network and points at the first by its element
	// number; the daemon's own check (attach.checkDefaultRoutes) would name both.
	namesBoth := func(msg string) bool {
		return strings.Contains(msg, e.ns+"/green") && strings.Contains(msg, "default") &&
			(strings.Contains(msg, e.ns+"/blue") || strings.Contains(msg, "element 1"))
	}
	if !namesBoth(err.Error()) {
		t.Errorf("ADD error %q does not name both default-route networks", err)
	}
	if got := testbed.Links(t, two.Netns); len(got) != 0 {
		t.Errorf("interfaces attached although the selection was rejected: %v", got)
	}
	for _, ev := range e.WaitEvent(t, two.Pod, "InvalidNetworkSelection") {
		if ev.Reason == "InvalidNetworkSelection" && (ev.Type != "Warning" || !namesBoth(ev.Message)) {
			t.Errorf("event %s %q does not name both default-route networks", ev.Type, ev.Message)
		}
	}
	e.MustDel(t, two)

	// A gateway not on net1's subnet: the ADD fails and is rolled back.
	far := e.NewSandbox(t, e.ns, "far", map[string]string{networks: `[{"name":"blue","default-route":["10.30.9.1"]}]`})
	_, err = e.Add(t, far)
	if err == nil || !strings.Contains(err.Error(), "10.30.9.1") || !strings.Contains(err.Error(), "not directly reachable") {
		t.Errorf("ADD with an unreachable default-route gateway = %v", err)
	}
	if got := testbed.Links(t, far.Netns); len(got) != 0 {
		t.Errorf("interfaces left after the failed default route: %v", got)
	}
	e.wantWarning(t, far, "NetworkSetupFailed", "10.30.9.1")
	e.MustDel(t, far)

	for _, p := range []*testbed.Sandbox{sb, plain, neighbor} {
		e.MustDel(t, p)
	}
	e.assertRoutesClean(t, l)
}

func testPerPodRoutesViaCNIArgs(t *testing.T, cp *testbed.ControlPlane) {
	e := routesEnv(t, cp)
	l := e.newLab(t)
	e.CP.CreateNAD(t, e.ns, "dds", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"dds","plugins":[
		{"type":"bridge","bridge":%q,"isGateway":false,"ipMasq":false,
		 "ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.30.1.0/24","rangeStart":"10.30.1.100"}]]}},
		{"type":"multinet-routes"}]}`, l.bridge, e.IPAMDir))
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: `[{"name":"dds",` +
		`"cni-args":{"routes":[{"dst":"10.30.3.0/24","gw":"10.30.1.1"}]}}]`})
	e.MustAdd(t, sb)
	got := routeLines(t, sb.Netns)
	if want := "10.30.3.0/24 via 10.30.1.1 dev net1 proto 109"; !slices.Contains(got, want) {
		t.Fatalf("pod routes %q lack the cni-args route %q", got, want)
	}
	if slices.ContainsFunc(got, func(r string) bool { return strings.HasPrefix(r, "10.30.2.") }) {
		t.Errorf("a route to subnet B that nobody asked for: %q", got)
	}
	if err := testbed.Ping(t, sb.Netns, peerC); err != nil {
		t.Errorf("with the cni-args route: %v", err)
	}
	if err := testbed.Ping(t, sb.Netns, peerB); err == nil {
		t.Errorf("peer B reachable without a route to it")
	}
	if err := e.Check(t, sb); err != nil {
		t.Errorf("CHECK of the pod: %v\n%s", err, e.Log())
	}
	// CHECK goes through the core path to the chained plugin, which sees the route missing.
	if out, err := exec.Command("nsenter", "--net="+sb.Netns.Path(), "ip", "route", "del", "10.30.3.0/24").CombinedOutput(); err != nil {
		t.Fatalf("ip route del: %v %s", err, out)
	}
	// The first plugin of the chain (bridge) already checks every route of the result, the
	// ones multinet-routes added included, so the error is bridge's: "Expected Route
	// {Dst:{IP:10.30.3.0 Mask:ffffff00} GW:10.30.1.1 ...} not found".
	if err := e.Check(t, sb); err == nil || !strings.Contains(err.Error(), "10.30.3.0") || !strings.Contains(err.Error(), "dds") {
		t.Errorf("CHECK after the route was removed by hand = %v, want an error naming network dds and 10.30.3.0", err)
	}
	e.MustDel(t, sb)
	e.assertRoutesClean(t, l)
}

// newLab builds the router, the peers and subnet A's host bridge, all removed at cleanup.
func (e *env) newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{bridge: "mna" + e.ID, router: testbed.NewNetNS(t)}
	peers := map[string]ns.NetNS{"b": testbed.NewNetNS(t), "c": testbed.NewNetNS(t)}
	hostEnd := "mnr" + e.ID
	t.Cleanup(func() { testbed.DeleteLink(hostEnd); testbed.DeleteLink(l.bridge) })
	sh(t, nil, "ip", "link", "add", l.bridge, "type", "bridge")
	sh(t, nil, "ip", "link", "set", l.bridge, "up")
	sh(t, nil, "ip", "link", "add", hostEnd, "type", "veth", "peer", "name", "a0", "netns", l.router.Path())
	sh(t, nil, "ip", "link", "set", hostEnd, "master", l.bridge, "up")
	sh(t, l.router, "ip", "addr", "add", "10.30.1.1/24", "dev", "a0")
	sh(t, l.router, "ip", "link", "set", "a0", "up")
	sh(t, l.router, "ip", "link", "set", "lo", "up")
	for _, s := range []string{"b", "c"} {
		n := map[string]string{"b": "2", "c": "3"}[s]
		p := peers[s]
		sh(t, l.router, "ip", "link", "add", s+"0", "type", "veth", "peer", "name", "eth0", "netns", p.Path())
		sh(t, l.router, "ip", "addr", "add", "10.30."+n+".1/24", "dev", s+"0")
		sh(t, l.router, "ip", "link", "set", s+"0", "up")
		sh(t, p, "ip", "addr", "add", "10.30."+n+".10/24", "dev", "eth0")
		sh(t, p, "ip", "link", "set", "eth0", "up")
		sh(t, p, "ip", "link", "set", "lo", "up")
		sh(t, p, "ip", "route", "add", "10.30.1.0/24", "via", "10.30."+n+".1")
	}
	sh(t, l.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for _, peer := range []net.IP{peerB, peerC} {
		if err := testbed.Ping(t, l.router, peer); err != nil {
			t.Fatalf("lab: router cannot reach its peer: %v", err)
		}
	}
	return l
}

// clusterWithRoutes replaces the node's cluster network (read by multinetd at each ADD) with
// one whose result carries routes: a default route and 10.30.240.0/21, both via a cluster
// gateway netns at 10.30.244.1 that holds the "service" address it returns (10.30.241.1) and
// forwards nothing.
func (e *env) clusterWithRoutes(t *testing.T) net.IP {
	t.Helper()
	path := filepath.Join(e.ConfDir, "10-cluster.conflist")
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var prev struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(old, &prev); err != nil {
		t.Fatal(err)
	}
	bridge := "mnc" + e.ID // NewNode removes it at cleanup
	testbed.WriteFile(t, path, fmt.Sprintf(`{"cniVersion":%q,"name":"cluster","plugins":[{"type":"bridge","bridge":%q,
		"isGateway":false,"ipMasq":false,"ipam":{"type":"host-local","dataDir":%q,
		"ranges":[[{"subnet":"10.30.244.0/24","rangeStart":"10.30.244.10","gateway":"10.30.244.1"}]],
		"routes":[{"dst":"0.0.0.0/0"},{"dst":"10.30.240.0/21"}]}}]}`, prev.CNIVersion, bridge, e.IPAMDir))
	gw := testbed.NewNetNS(t)
	hostEnd := "mng" + e.ID
	t.Cleanup(func() { testbed.DeleteLink(hostEnd) })
	sh(t, nil, "ip", "link", "add", bridge, "type", "bridge")
	sh(t, nil, "ip", "link", "set", bridge, "up")
	sh(t, nil, "ip", "link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", gw.Path())
	sh(t, nil, "ip", "link", "set", hostEnd, "master", bridge, "up")
	sh(t, gw, "ip", "addr", "add", "10.30.244.1/24", "dev", "eth0")
	sh(t, gw, "ip", "link", "set", "eth0", "up")
	sh(t, gw, "ip", "addr", "add", "10.30.241.1/32", "dev", "lo")
	sh(t, gw, "ip", "link", "set", "lo", "up")
	return net.ParseIP("10.30.241.1")
}

// assertRoutesClean checks that the pods' DELs left nothing: addresses, records, and pod
// veths on subnet A's bridge (the router's stays).
func (e *env) assertRoutesClean(t *testing.T, l *lab) {
	t.Helper()
	if got := testbed.Allocations(t, e.IPAMDir); len(got) != 0 {
		t.Errorf("addresses leaked: %v", got)
	}
	if got := e.Checkpoints(t); len(got) != 0 {
		t.Errorf("checkpoint records left: %v", got)
	}
	if n := testbed.VethsOn(t, l.bridge); n != 1 {
		t.Errorf("%d veths on %s after every DEL, want only the router's", n, l.bridge)
	}
	if n := testbed.VethsOn(t, "mnc"+e.ID); n > 1 {
		t.Errorf("%d veths on the cluster bridge after every DEL", n)
	}
}

// wantWarning waits for a Warning Event with reason on the pod whose message names every
// string of want.
func (e *env) wantWarning(t *testing.T, sb *testbed.Sandbox, reason string, want ...string) {
	t.Helper()
	for _, ev := range e.WaitEvent(t, sb.Pod, reason) {
		if ev.Reason != reason {
			continue
		}
		if ev.Type != "Warning" {
			t.Errorf("event %s is %s, want Warning", reason, ev.Type)
		}
		for _, w := range want {
			if !strings.Contains(ev.Message, w) {
				t.Errorf("event %s message %q does not name %q", reason, ev.Message, w)
			}
		}
	}
}

// routeLines lists the IPv4 routes of the main table in netns as
// "<dst|default> [via <gw>] dev <if> proto <n>", sorted.
// waitRoute waits until the pod's IPv4 routes include want.
func waitRoute(t *testing.T, sb *testbed.Sandbox, want string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = routeLines(t, sb.Netns); slices.Contains(got, want) {
			return
		}
	}
	t.Fatalf("pod %s routes %q, want %q", sb.Pod.Name, got, want)
}

func routeLines(t *testing.T, netns ns.NetNS) []string {
	t.Helper()
	var out []string
	err := netns.Do(func(ns.NetNS) error {
		rs, err := netlinksafe.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		links, err := netlinksafe.LinkList()
		if err != nil {
			return err
		}
		names := map[int]string{}
		for _, l := range links {
			names[l.Attrs().Index] = l.Attrs().Name
		}
		for _, r := range rs {
			dst := "default"
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 || !r.Dst.IP.IsUnspecified() {
					dst = r.Dst.String()
				}
			}
			dev, ok := names[r.LinkIndex]
			if !ok {
				dev = fmt.Sprint(r.LinkIndex)
			}
			line := dst
			if r.Gw != nil {
				line += " via " + r.Gw.String()
			}
			out = append(out, fmt.Sprintf("%s dev %s proto %d", line, dev, int(r.Protocol)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// onDev keeps the route lines on dev.
func onDev(lines []string, dev string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, " dev "+dev+" ") {
			out = append(out, l)
		}
	}
	return out
}

// sh runs a command in netns (the host's when nil) or fails the test.
func sh(t *testing.T, netns ns.NetNS, args ...string) {
	t.Helper()
	if netns != nil {
		args = append([]string{"nsenter", "--net=" + netns.Path()}, args...)
	}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// hostForwarding reads the host's IPv4 forwarding switch, which these tests never change.
func hostForwarding(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}
