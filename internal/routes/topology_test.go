package routes

import (
	"path/filepath"
	"testing"
)

// topology is the test bed of the integration tests, every node a netns of its own:
//
//	pod --eth0-- cluster (10.201.99.0/24; "services" on 10.201.98.0/24 behind it)
//	pod --net1 (added by CNI)-- br0 in node -- router: A 10.201.1.0/24, fd00:201:1::/64
//	router -- peerB: B 10.201.2.0/24, fd00:201:2::/64
//	router -- peerC: C 10.201.3.0/24
//
// The pod's default route is eth0's (via 10.201.99.1, metric 100) as a cluster network's is.
type topology struct {
	router, peerB, peerC, node, pod, cluster string
	cni                                      *cniRunner
	dataDir                                  string
}

const podDefault = "default via 10.201.99.1 dev eth0 metric 100"

func newTopology(t *testing.T) *topology {
	t.Helper()
	needRoot(t)
	tp := &topology{
		router: newNetns(t, "rtr"), peerB: newNetns(t, "pb"), peerC: newNetns(t, "pc"),
		node: newNetns(t, "node"), pod: newNetns(t, "pod"), cluster: newNetns(t, "clu"),
	}
	tp.cni = newCNIRunner(t, tp.node)
	tp.dataDir = filepath.Join(tp.cni.dir, "ipam")
	sh(t, tp.router, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	sh(t, tp.pod, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	tp.addBridge(t, "br0", "ra", "10.201.1.1/24", "fd00:201:1::1/64")
	veth(t, tp.router, "rb", []string{"10.201.2.1/24", "fd00:201:2::1/64"}, tp.peerB, "eth0", []string{"10.201.2.2/24", "fd00:201:2::2/64"})
	sh(t, tp.peerB, "ip", "route", "add", "default", "via", "10.201.2.1")
	sh(t, tp.peerB, "ip", "-6", "route", "add", "default", "via", "fd00:201:2::1")
	veth(t, tp.router, "rc", []string{"10.201.3.1/24"}, tp.peerC, "eth0", []string{"10.201.3.2/24"})
	sh(t, tp.peerC, "ip", "route", "add", "default", "via", "10.201.3.1")
	veth(t, tp.pod, "eth0", []string{"10.201.99.2/24"}, tp.cluster, "c0", []string{"10.201.99.1/24"})
	sh(t, tp.cluster, "ip", "addr", "add", "10.201.98.1/32", "dev", "lo")
	sh(t, tp.pod, "ip", "route", "add", "default", "via", "10.201.99.1", "metric", "100")
	sh(t, tp.pod, "ip", "route", "add", "10.201.98.0/24", "via", "10.201.99.1")
	return tp
}

// addBridge creates bridge br in the node netns and joins the router to it on routerIf.
func (tp *topology) addBridge(t *testing.T, br, routerIf string, routerAddrs ...string) {
	t.Helper()
	sh(t, tp.node, "ip", "link", "add", br, "type", "bridge")
	sh(t, tp.node, "ip", "link", "set", br, "up")
	veth(t, tp.router, routerIf, routerAddrs, tp.node, routerIf+"-n", nil)
	sh(t, tp.node, "ip", "link", "set", routerIf+"-n", "master", br)
}

// subnetA is the IPAM of the pod's net1: dual-stack on A.
func (tp *topology) subnetA() [][]map[string]any {
	return [][]map[string]any{
		hostRange("10.201.1.0/24", "10.201.1.10", "10.201.1.1"),
		hostRange("fd00:201:1::/64", "fd00:201:1::10", "fd00:201:1::1"),
	}
}

// ddsGroup is the routed domain A+B+C (v4) and A+B (v6).
func ddsGroup() map[string]any {
	return map[string]any{"dds": map[string]any{"subnets": map[string]any{
		"10.201.1.0/24":   map[string]string{"gw": "10.201.1.1"},
		"10.201.2.0/24":   map[string]string{"gw": "10.201.2.1"},
		"10.201.3.0/24":   map[string]string{"gw": "10.201.3.1"},
		"fd00:201:1::/64": map[string]string{"gw": "fd00:201:1::1"},
		"fd00:201:2::/64": map[string]string{"gw": "fd00:201:2::1"},
	}}}
}

func routesPlugin(fields map[string]any) map[string]any {
	p := map[string]any{"type": "multinet-routes"}
	for k, v := range fields {
		p[k] = v
	}
	return p
}
