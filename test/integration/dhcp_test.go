package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/dhcp/dhcptest"
	"github.com/multinet/multinet/internal/status"
	"github.com/multinet/multinet/internal/testbed"
)

// TestDHCP attaches pods through the core path to networks whose IPAM is multinet-dhcp,
// against dnsmasq serving from its own netns.
func TestDHCP(t *testing.T) {
	testbed.RequireRoot(t)
	cp := testbed.StartControlPlane(t)
	for _, c := range []struct {
		name string
		f    func(*testing.T, *testbed.ControlPlane)
	}{
		{"LeaseRoutesDNSAndMTUReachThePodAndStatus", testDHCPLease},
		{"RouterWith121And249And33AtOnce", testDHCPBlogCase},
		{"RestartMidLeaseKeepsAndRenewsTheAddress", testDHCPRestart},
		{"ServerThatLostItsLeasesGetsTheSameAddressBack", testDHCPServerLostLeases},
		{"DelReleasesAndTwiceIsFine", testDHCPDel},
		{"DelWithNetnsRemoved", testDHCPDelNetnsGone},
		{"RestartedPodGetsItsAddressBackAfterDelThenAdd", testDHCPRestartedPod},
		{"LateDelOfTheOldSandboxKeepsTheNewOnesAddress", testDHCPLateDel},
		{"MacvlanStatusHasTheLeasesDNS", testDHCPMacvlanDNS},
		{"ServerDownFailsWithinTimeoutWithEvent", testDHCPServerDown},
		{"FiftyPodsFiftyLeases", testDHCPFiftyPods},
		{"PluginRunByAnotherRuntimeFindsTheSocketInItsConf", testDHCPStandalone},
	} {
		t.Run(c.name, func(t *testing.T) { c.f(t, cp) })
	}
}

// dhcpNAD is a bridge network on the server's bridge with multinet-dhcp IPAM; ipam holds
// extra ipam fields (",\"router\":\"default\"").
func dhcpNAD(name, bridge, ipam string) string {
	return fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"bridge","bridge":%q,"isGateway":false,"ipMasq":false,
		"ipam":{"type":"multinet-dhcp"%s}}`, name, bridge, ipam)
}

// podRoutes are the IPv4 routes on ifname in the pod.
func podRoutes(t *testing.T, netns ns.NetNS, ifname string) []netlink.Route {
	t.Helper()
	var out []netlink.Route
	err := netns.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(ifname)
		if err != nil {
			return err
		}
		out, err = netlinksafe.RouteList(l, netlink.FAMILY_V4)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// routeVia finds the route to dst ("0.0.0.0/0" for the default) and its gateway.
func routeVia(rs []netlink.Route, dst string) (string, bool) {
	for _, r := range rs {
		d := "0.0.0.0/0"
		if r.Dst != nil {
			d = r.Dst.String()
		}
		if d == dst {
			return r.Gw.String(), true
		}
	}
	return "", false
}

func podMTU(t *testing.T, netns ns.NetNS, ifname string) int {
	t.Helper()
	var mtu int
	err := netns.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(ifname)
		if err == nil {
			mtu = l.Attrs().MTU
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return mtu
}

// leaseFiles lists the daemon's lease records (not the addresses it remembers, in a
// directory beside them).
func (e *env) leaseFiles(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.StateDir, "dhcp"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		if !strings.HasPrefix(en.Name(), ".") && !en.IsDir() {
			out = append(out, en.Name())
		}
	}
	return out
}

func testDHCPLease(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	srv := dhcptest.New(t, 1, "--dhcp-option=3,10.40.1.1", "--dhcp-option=6,10.40.1.53,10.40.1.54",
		"--dhcp-option=15,dhcp.test", "--dhcp-option=121,10.41.0.0/16,10.40.1.1,10.45.7.0/24,10.40.1.2",
		"--dhcp-option=26,1400")
	e.CP.CreateNAD(t, e.ns, "lan", dhcpNAD("lan", srv.Bridge, ""))
	sb := e.NewSandbox(t, e.ns, "web", map[string]string{networks: "lan"})
	e.MustAdd(t, sb)
	ip := testbed.IPv4(t, sb.Netns, "net1")
	if !strings.HasPrefix(ip.String(), "10.40.1.") {
		t.Fatalf("net1 has %s, want a lease from 10.40.1.0/24", ip)
	}
	rs := podRoutes(t, sb.Netns, "net1")
	for dst, gw := range map[string]string{"10.41.0.0/16": "10.40.1.1", "10.45.7.0/24": "10.40.1.2"} {
		if got, ok := routeVia(rs, dst); !ok || got != gw {
			t.Errorf("route to %s via %q (present %v), want via %s (option 121); routes %v", dst, got, ok, gw, rs)
		}
	}
	if gw, ok := routeVia(rs, "0.0.0.0/0"); ok {
		t.Errorf("default route via %s on net1: router mode ignore must leave the default route alone", gw)
	}
	if mtu := podMTU(t, sb.Netns, "net1"); mtu != 1400 {
		t.Errorf("net1 MTU %d, want 1400 (option 26)", mtu)
	}
	st := e.NetworkStatus(t, sb, 2)[1]
	if !slices.Equal(st.IPs, []string{ip.String()}) || !slices.Equal(st.DNS.Nameservers, []string{"10.40.1.53", "10.40.1.54"}) ||
		st.DNS.Domain != "dhcp.test" || len(st.Gateway) != 0 {
		t.Errorf("network-status %+v: want ips [%s], dns 10.40.1.53 10.40.1.54 domain dhcp.test, no gateway (mode ignore)", st, ip)
	}
	if err := e.Check(t, sb); err != nil {
		t.Errorf("CHECK of a pod holding its lease: %v", err)
	}
	l, ok := srv.LeaseOf(t, ip.String())
	if !ok || l.Hostname != "web" || !strings.HasPrefix(l.ClientID, "ff:") {
		t.Errorf("server lease for %s: %+v (found %v), want host name web and an RFC 4361 client-id", ip, l, ok)
	}
	e.MustDel(t, sb)
}

// testDHCPBlogCase is the configuration of shared/seeds' blog post: macvlan, a router option
// and routes in 121, 249 and 33 at once, plus static routes in the ipam section.
func testDHCPBlogCase(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	srv := dhcptest.New(t, 2, "--dhcp-option=3,10.40.2.1",
		"--dhcp-option=121,0.0.0.0/0,10.40.2.1,10.41.0.0/16,10.40.2.1,10.40.2.0/24,0.0.0.0",
		"--dhcp-option=249,0.0.0.0/0,10.40.2.1,10.41.0.0/16,10.40.2.1",
		"--dhcp-option=33,10.42.0.0,10.40.2.1,10.43.0.0,10.40.2.1")
	for _, mode := range []string{"ignore", "default"} {
		conf := fmt.Sprintf(`{"cniVersion":"0.3.1","name":"mv-%s","type":"macvlan","master":%q,"mode":"bridge",
			"ipam":{"type":"multinet-dhcp","router":%q,"routes":[{"dst":"10.44.0.0/16","gw":"10.40.2.1"}]},
			"dns":{"nameservers":["10.40.2.53"]}}`, mode, srv.Bridge, mode)
		e.CP.CreateNAD(t, e.ns, "mv-"+mode, conf)
		sb := e.NewSandbox(t, e.ns, "blog-"+mode, map[string]string{networks: "mv-" + mode})
		e.MustAdd(t, sb)
		rs := podRoutes(t, sb.Netns, "net1")
		for _, dst := range []string{"10.41.0.0/16", "10.44.0.0/16"} {
			if gw, ok := routeVia(rs, dst); !ok || gw != "10.40.2.1" {
				t.Errorf("mode %s: route to %s via %q (%v), want via 10.40.2.1", mode, dst, gw, ok)
			}
		}
		if _, ok := routeVia(rs, "10.42.0.0/16"); ok {
			t.Errorf("mode %s: option 33 route installed although option 121 is present (RFC 3442)", mode)
		}
		gw, ok := routeVia(rs, "0.0.0.0/0")
		if mode == "ignore" && ok {
			t.Errorf("mode ignore: default route via %s on net1", gw)
		}
		if mode == "default" && (!ok || gw != "10.40.2.1") {
			t.Errorf("mode default: default route via %q (%v), want via 10.40.2.1 on net1", gw, ok)
		}
		if err := testbed.Ping(t, sb.Netns, net.ParseIP(srv.Addr)); err != nil {
			t.Errorf("mode %s: %v", mode, err)
		}
		e.MustDel(t, sb)
	}
}

func testDHCPRestart(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	srv := dhcptest.New(t, 3)
	e.CP.CreateNAD(t, e.ns, "lan", dhcpNAD("lan", srv.Bridge, `,"renewAfter":"2s"`))
	sb := e.NewSandbox(t, e.ns, "db", map[string]string{networks: "lan"})
	e.MustAdd(t, sb)
	ip := testbed.IPv4(t, sb.Netns, "net1").String()
	first, _ := srv.LeaseOf(t, ip)
	renewed := waitRenewal(t, srv, ip, first.Expiry)
	e.Stop()
	time.Sleep(3 * time.Second) // a renewal is missed while the daemon is down
	e.Start(t)
	waitRenewal(t, srv, ip, renewed)
	if got := testbed.IPv4(t, sb.Netns, "net1").String(); got != ip {
		t.Errorf("net1 has %s after the restart, had %s", got, ip)
	}
	if ls := srv.Leases(t); len(ls) != 1 || ls[0].IP != ip {
		t.Errorf("server leases %+v, want only %s", ls, ip)
	}
	if !strings.Contains(e.Log(), `"msg":"DHCP leases reloaded","count":1`) {
		t.Errorf("daemon log does not say it reloaded the lease:\n%s", e.Log())
	}
	e.MustDel(t, sb)
}

// testDHCPServerLostLeases restarts the server without its lease file, while multinetd is
// down (INIT-REBOOT at its restart) and while it runs (at the next renewal): both times the
// pod's address is registered again. Then the server refuses it and offers another one,
// which is declined: the pod is never reconfigured behind its back.
func testDHCPServerLostLeases(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	srv := dhcptest.New(t, 8)
	e.CP.CreateNAD(t, e.ns, "lan", dhcpNAD("lan", srv.Bridge, `,"renewAfter":"2s"`))
	sb := e.NewSandbox(t, e.ns, "cache", map[string]string{networks: "lan"})
	e.MustAdd(t, sb)
	ip := testbed.IPv4(t, sb.Netns, "net1").String()
	e.Stop()
	srv.Stop()
	if err := os.Remove(srv.LeaseFile); err != nil {
		t.Fatal(err)
	}
	srv.Start(t)
	metricsAddr := freeAddr(t)
	e.Start(t, "--metrics-address", metricsAddr)
	waitRenewal(t, srv, ip, 0)
	if got := testbed.IPv4(t, sb.Netns, "net1").String(); got != ip {
		t.Errorf("net1 has %s, had %s", got, ip)
	}
	if ls := srv.Leases(t); len(ls) != 1 {
		t.Errorf("server leases %+v, want only %s", ls, ip)
	}
	// Again with multinetd running: the next renewal meets a server that does not know it.
	srv.Stop()
	if err := os.Remove(srv.LeaseFile); err != nil {
		t.Fatal(err)
	}
	srv.Start(t)
	waitRenewal(t, srv, ip, 0)
	if ls := srv.Leases(t); len(ls) != 1 || ls[0].IP != ip {
		t.Errorf("server leases %+v, want only %s", ls, ip)
	}
	// Now the server wants the pod elsewhere: it refuses the renewal and offers another
	// address, which multinet declines, keeping the pod's address as it is.
	// The pool is 10.40.8.10-250; the pod's address is the server's choice, so the other one
	// must be chosen against it.
	other := "10.40.8.99"
	if ip == other {
		other = "10.40.8.98"
	}
	srv.Restart(t, "--dhcp-host=id:"+srv.Leases(t)[0].ClientID+","+other)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(e.Log(), "not the pod's "+ip+": declined"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("multinetd never said it declined the other address\n%s\n%s", e.Log(), srv.Log())
		}
	}
	if got := testbed.IPv4(t, sb.Netns, "net1").String(); got != ip {
		t.Errorf("net1 has %s, had %s: the pod was reconfigured", got, ip)
	}
	evs := e.WaitEvent(t, sb.Pod, "DHCPLeaseLost")
	t.Logf("events: %d, e.g. %q", len(evs), evs[len(evs)-1].Message)
	m := scrapeMetrics(t, metricsAddr)
	if m["multinet_dhcp_leases_held"] != 1 || m[`multinet_dhcp_renewals_total{result="ok"}`] < 2 ||
		m[`multinet_dhcp_renewals_total{result="failed"}`] < 1 || m["multinet_dhcp_leases_lost_total"] < 1 {
		t.Errorf("DHCP metrics %v: want 1 lease held, at least 2 renewals ok (INIT-REBOOT and one to a server that "+
			"forgot it), 1 failed and 1 lease lost", m)
	}
	e.MustDel(t, sb)
	if held := scrapeMetrics(t, metricsAddr)["multinet_dhcp_leases_held"]; held != 0 {
		t.Errorf("multinet_dhcp_leases_held %v after DEL, want 0", held)
	}
}

// freeAddr is a free local TCP address (for multinetd's /metrics).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrapeMetrics reads multinetd's multinet_dhcp_* samples, by name and labels.
func scrapeMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(name, "multinet_dhcp_") {
			continue
		}
		if out[name], err = strconv.ParseFloat(v, 64); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
	}
	return out
}

// waitRenewal waits for the server's lease of ip to expire later than after, and returns
// the new expiry.
func waitRenewal(t *testing.T, srv *dhcptest.Server, ip string, after int64) int64 {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if l, ok := srv.LeaseOf(t, ip); ok && l.Expiry > after {
			return l.Expiry
		}
	}
	t.Fatalf("no renewal of %s seen in the server's lease file\n%s", ip, srv.Log())
	return 0
}

func testDHCPDel(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	srv := dhcptest.New(t, 4)
	e.CP.CreateNAD(t, e.ns, "lan", dhcpNAD("lan", srv.Bridge, ""))
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "lan"})
	e.MustAdd(t, sb)
	ip := testbed.IPv4(t, sb.Netns, "net1").String()
	if _, ok := srv.LeaseOf(t, ip); !ok || len(e.leaseFiles(t)) != 1 {
		t.Fatalf("lease of %s: server has it %v, daemon records %v", ip, ok, e.leaseFiles(t))
	}
	e.MustDel(t, sb)
	waitReleased(t, srv, ip)
	e.MustDel(t, sb)
	if got := e.leaseFiles(t); len(got) != 0 {
		t.Errorf("lease records left: %v", got)
	}
}

func testDHCPDelNetnsGone(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	srv := dhcptest.New(t, 5)
	e.CP.CreateNAD(t, e.ns, "lan", dhcpNAD("lan", srv.Bridge, ""))
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "lan"})
	e.MustAdd(t, sb)
	ip := testbed.IPv4(t, sb.Netns, "net1").String()
	removeNetns(t, sb)
	rt := e.RuntimeConf(sb)
	rt.NetNS = ""
	if err := e.Runtime.DelNetworkList(testbed.Ctx(t), e.Conflist(t), rt); err != nil {
		t.Fatalf("DEL with the netns gone: %v\n%s", err, e.Log())
	}
	if got := e.leaseFiles(t); len(got) != 0 {
		t.Errorf("lease records left: %v", got)
	}
	if got := e.Checkpoints(t); len(got) != 0 {
		t.Errorf("checkpoint records left: %v", got)
	}
	waitReleased(t, srv, ip) // a bridge network's lease is released on the host bridge
}

// testDHCPRestartedPod restarts a pod's sandbox in the runtime's order, DEL of the old one
// (its lease released) before ADD of the new one, with multinetd restarted in between: the
// new sandbox asks for the pod's last address (option 50 in its DISCOVER) and gets it.
// Without that, dnsmasq picks an address from the new interface's MAC.
func testDHCPRestartedPod(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	srv := dhcptest.New(t, 9)
	e.CP.CreateNAD(t, e.ns, "lan", dhcpNAD("lan", srv.Bridge, ""))
	old := e.NewSandbox(t, e.ns, "web", map[string]string{networks: "lan"})
	e.MustAdd(t, old)
	ip := testbed.IPv4(t, old.Netns, "net1").String()
	e.MustDel(t, old)
	waitReleased(t, srv, ip)
	e.Stop()
	e.Start(t)
	sb := nextSandbox(t, old)
	e.MustAdd(t, sb)
	if got := testbed.IPv4(t, sb.Netns, "net1").String(); got != ip {
		t.Errorf("the pod's new sandbox has %s, the old one had %s\n%s", got, ip, e.Log())
	}
	e.NetworkStatus(t, sb, 2)
	pod, err := cp.Client.CoreV1().Pods(e.ns).Get(testbed.Ctx(t), sb.Pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ann := pod.Annotations[status.Annotation]; strings.Contains(ann, `"dns":{}`) {
		t.Errorf("network-status says \"dns\":{} for networks without DNS: %s", ann)
	}
	e.MustDel(t, sb)
}

// testDHCPLateDel: the runtime adds a pod's new sandbox before it deletes the old one, whose
// netns is gone by then. The server gave the new sandbox the old one's address (the client
// identifier, from the pod UID, is the same); the late DEL must not release it.
func testDHCPLateDel(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	srv := dhcptest.New(t, 11)
	e.CP.CreateNAD(t, e.ns, "lan", dhcpNAD("lan", srv.Bridge, ""))
	old := e.NewSandbox(t, e.ns, "web", map[string]string{networks: "lan"})
	e.MustAdd(t, old)
	ip := testbed.IPv4(t, old.Netns, "net1").String()
	sb := nextSandbox(t, old)
	e.MustAdd(t, sb)
	if got := testbed.IPv4(t, sb.Netns, "net1").String(); got != ip {
		t.Fatalf("the new sandbox has %s, the old one %s: the server did not give the address back", got, ip)
	}
	removeNetns(t, old)
	rt := e.RuntimeConf(old)
	rt.NetNS = ""
	if err := e.Runtime.DelNetworkList(testbed.Ctx(t), e.Conflist(t), rt); err != nil {
		t.Fatalf("DEL of the old sandbox: %v\n%s", err, e.Log())
	}
	if !strings.Contains(e.Log(), "DHCPRELEASE not sent: another sandbox holds the address") {
		t.Errorf("daemon log does not say it kept the address:\n%s", e.Log())
	}
	// Another pod's lease, after the DEL: the server has handled whatever the DEL sent
	// before it answers that one.
	other := e.NewSandbox(t, e.ns, "other", map[string]string{networks: "lan"})
	e.MustAdd(t, other)
	if _, ok := srv.LeaseOf(t, ip); !ok || testbed.IPv4(t, other.Netns, "net1").String() == ip {
		t.Errorf("the server released %s, which the new sandbox holds\n%s", ip, srv.Log())
	}
	if got := e.leaseFiles(t); len(got) != 2 {
		t.Errorf("lease records %v, want the new sandbox's and the other pod's", got)
	}
	e.MustDel(t, other)
	e.MustDel(t, sb)
	waitReleased(t, srv, ip)
}

// nextSandbox is the pod's next sandbox: the same pod, a new netns and container ID.
func nextSandbox(t *testing.T, old *testbed.Sandbox) *testbed.Sandbox {
	return &testbed.Sandbox{Pod: old.Pod, Netns: testbed.NewNetNS(t), ID: "c" + testbed.RandomID() + testbed.RandomID()}
}

// waitReleased waits until the server no longer lists ip.
func waitReleased(t *testing.T, srv *dhcptest.Server, ip string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, ok := srv.LeaseOf(t, ip); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server still lists %s after DEL (no DHCPRELEASE)\n%s", ip, srv.Log())
		}
	}
}

func testDHCPServerDown(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	srv := dhcptest.New(t, 6)
	srv.Stop()
	e.CP.CreateNAD(t, e.ns, "lan", dhcpNAD("lan", srv.Bridge, `,"timeout":"3s","retries":2`))
	sb := e.NewSandbox(t, e.ns, "lost", map[string]string{networks: "lan"})
	start := time.Now()
	_, err := e.Add(t, sb)
	took := time.Since(start)
	if err == nil {
		t.Fatal("ADD succeeded without a DHCP server")
	}
	if took > 8*time.Second {
		t.Errorf("ADD failed after %s, want about the 3s timeout", took)
	}
	for _, want := range []string{"sent DHCPDISCOVER 2 times over 3s", "no offer", "net1", e.ns + "/lan", e.ns + "/lost"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	evs := e.WaitEvent(t, sb.Pod, "NetworkSetupFailed")
	found := false
	for _, ev := range evs {
		found = found || strings.Contains(ev.Message, "sent DHCPDISCOVER 2 times")
	}
	if !found {
		t.Errorf("no NetworkSetupFailed Event naming the DISCOVERs: %+v", evs)
	}
	if got := e.leaseFiles(t); len(got) != 0 {
		t.Errorf("lease records after a failed ADD: %v", got)
	}
}

func testDHCPFiftyPods(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	// dnsmasq pings each new address before offering it, one at a time (about 3s each): a
	// burst of 50 would need minutes. Production servers with that check need a longer timeout.
	srv := dhcptest.New(t, 7, "--no-ping")
	e.CP.CreateNAD(t, e.ns, "lan", dhcpNAD("lan", srv.Bridge, ""))
	const n = 50
	sbs := make([]*testbed.Sandbox, n)
	for i := range sbs {
		sbs[i] = e.NewSandbox(t, e.ns, fmt.Sprintf("p%02d", i), map[string]string{networks: "lan"})
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, sb := range sbs {
		wg.Go(func() { _, errs[i] = e.Add(t, sb) })
	}
	wg.Wait()
	ips := map[string]bool{}
	for i, sb := range sbs {
		if errs[i] != nil {
			t.Fatalf("ADD of pod %d: %v\n%s", i, errs[i], e.Log())
		}
		ips[testbed.IPv4(t, sb.Netns, "net1").String()] = true
	}
	if len(ips) != n || len(srv.Leases(t)) != n || len(e.leaseFiles(t)) != n {
		t.Errorf("%d distinct addresses, server has %d leases, daemon %d records; want %d each",
			len(ips), len(srv.Leases(t)), len(e.leaseFiles(t)), n)
	}
	for _, sb := range sbs {
		wg.Go(func() { e.MustDel(t, sb) })
	}
	wg.Wait()
	if ls := srv.Leases(t); len(ls) != 0 {
		t.Errorf("server still has %d leases after every DEL", len(ls))
	}
}

// testDHCPStandalone runs the bridge plugin with multinet-dhcp straight from libcni, as a
// runtime without multinet in front would: no MULTINET_SOCKET, no pod arguments; the plugin
// finds multinetd through the ipam "socket" field.
func testDHCPStandalone(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	srv := dhcptest.New(t, 10)
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"plain","plugins":[{"type":"bridge","bridge":%q,`+
		`"ipam":{"type":"multinet-dhcp","socket":%q}}]}`, srv.Bridge, e.Socket)
	list, err := libcni.ConfListFromBytes([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	netns := testbed.NewNetNS(t)
	rt := &libcni.RuntimeConf{ContainerID: "standalone" + e.ID, NetNS: netns.Path(), IfName: "eth1"}
	if _, err := e.Runtime.AddNetworkList(testbed.Ctx(t), list, rt); err != nil {
		t.Fatalf("ADD: %v\n%s", err, e.Log())
	}
	ip := testbed.IPv4(t, netns, "eth1").String()
	if _, ok := srv.LeaseOf(t, ip); !ok {
		t.Fatalf("server has no lease for %s", ip)
	}
	if err := e.Runtime.DelNetworkList(testbed.Ctx(t), list, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	waitReleased(t, srv, ip)
}

func testDHCPMacvlanDNS(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	srv := dhcptest.New(t, 12, "--dhcp-option=6,10.40.12.53", "--dhcp-option=15,dhcp.test")
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"mv","type":"macvlan","master":%q,"mode":"bridge",
		"ipam":{"type":"multinet-dhcp"}}`, srv.Bridge)
	e.CP.CreateNAD(t, e.ns, "mv", conf)
	sb := e.NewSandbox(t, e.ns, "mvdns", map[string]string{networks: "mv"})
	e.MustAdd(t, sb)
	st := e.NetworkStatus(t, sb, 2)[1]
	if !slices.Equal(st.DNS.Nameservers, []string{"10.40.12.53"}) || st.DNS.Domain != "dhcp.test" {
		t.Errorf("network-status %+v: want the lease's DNS", st)
	}
	e.MustDel(t, sb)
}
