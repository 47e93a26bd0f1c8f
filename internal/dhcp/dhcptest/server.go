// Package dhcptest runs dnsmasq (Debian's dnsmasq-base) as a DHCP server for tests and
// benchmarks: in its own network namespace, on a host bridge of its own that the pods under
// test attach to, serving 10.40.<n>.0/24, with its own lease file. It needs
// root; everything is removed in t.Cleanup, also when the test fails.
package dhcptest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/multinet/multinet/internal/testbed"
)

// Server is dnsmasq serving 10.40.<n>.0/24 from its own netns, on a host bridge the pods of a
// test attach to. Nothing of it routes via the host's own interfaces.
type Server struct {
	Bridge    string // host bridge, the pods' network
	Addr      string // the server's address, 10.40.<n>.1
	Subnet    string // 10.40.<n>.0/24
	LeaseFile string
	netns     ns.NetNS
	Dir       string // dnsmasq's files: lease file, log (dnsmasq.log), pid
	cmd       *exec.Cmd
	exited    chan struct{}
	args      []string
}

// New wires a server netns to a new bridge and starts dnsmasq for 10.40.n.10-250 (2 minute
// leases, dnsmasq's shortest) with the extra dnsmasq arguments (options to send, --no-ping).
func New(t testing.TB, n int, extra ...string) *Server {
	t.Helper()
	id := testbed.RandomID()
	s := &Server{Bridge: "mdh" + id, Addr: fmt.Sprintf("10.40.%d.1", n), Subnet: fmt.Sprintf("10.40.%d.0/24", n),
		netns: testbed.NewNetNS(t), Dir: t.TempDir()}
	s.LeaseFile = filepath.Join(s.Dir, "leases")
	addBridge(t, s.Bridge)
	host := "mdv" + id
	t.Cleanup(func() { testbed.DeleteLink(host) })
	br, err := netlinksafe.LinkByName(s.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host, MasterIndex: br.Attrs().Index},
		PeerName: "srv0", PeerNamespace: netlink.NsFd(int(s.netns.Fd()))}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("veth %s into the DHCP server's netns: %v", host, err)
	}
	if out, err := exec.Command("ip", "link", "set", host, "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s up: %v %s", host, err, out)
	}
	s.inNetns(t, "ip", "link", "set", "lo", "up")
	s.inNetns(t, "ip", "link", "set", "srv0", "up")
	s.inNetns(t, "ip", "addr", "add", s.Addr+"/24", "dev", "srv0")
	s.args = append([]string{"--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--user=root",
		"--interface=srv0", "--bind-interfaces", "--dhcp-authoritative", "--log-dhcp",
		"--log-facility=" + filepath.Join(s.Dir, "dnsmasq.log"),
		"--dhcp-leasefile=" + s.LeaseFile, "--pid-file=" + filepath.Join(s.Dir, "pid"),
		fmt.Sprintf("--dhcp-range=10.40.%d.10,10.40.%d.250,255.255.255.0,2m", n, n)}, extra...)
	s.Start(t)
	return s
}

// addBridge creates an up host bridge, removed at cleanup.
func addBridge(t testing.TB, name string) {
	t.Helper()
	t.Cleanup(func() { testbed.DeleteLink(name) })
	for _, args := range [][]string{{"link", "add", name, "type", "bridge"}, {"link", "set", name, "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
}

func (s *Server) inNetns(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + s.netns.Path()}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in the DHCP server's netns: %s: %v %s", strings.Join(args, " "), err, out)
	}
}

// Start runs dnsmasq (again, after Stop) and waits until it listens.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=" + s.netns.Path(), "dnsmasq"}, s.args...)...)
	out, err := os.Create(filepath.Join(s.Dir, "dnsmasq.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dnsmasq: %v", err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); out.Close(); close(done) }(cmd, s.exited)
	t.Cleanup(s.Stop)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if log, _ := os.ReadFile(filepath.Join(s.Dir, "dnsmasq.log")); strings.Contains(string(log), "DHCP, IP range") {
			return
		}
		select {
		case <-s.exited:
			t.Fatalf("dnsmasq exited: %s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq not serving after 10s: %s", s.Log())
		}
	}
}

// Restart stops dnsmasq and starts it again with more arguments (a changed configuration).
func (s *Server) Restart(t testing.TB, extra ...string) {
	t.Helper()
	s.Stop()
	s.args = append(s.args, extra...)
	s.Start(t)
}

// Stop ends dnsmasq (its lease file stays).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Log is dnsmasq's output and the end of its log.
func (s *Server) Log() string {
	a, _ := os.ReadFile(filepath.Join(s.Dir, "dnsmasq.out"))
	b, _ := os.ReadFile(filepath.Join(s.Dir, "dnsmasq.log"))
	lines := strings.Split(string(b), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return string(a) + strings.Join(lines, "\n")
}

// Lease is one line of dnsmasq's lease file.
type Lease struct {
	Expiry   int64
	MAC, IP  string
	Hostname string
	ClientID string
}

// Leases reads dnsmasq's lease file.
func (s *Server) Leases(t testing.TB) []Lease {
	t.Helper()
	f, err := os.Open(s.LeaseFile)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Lease
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l Lease
		if _, err := fmt.Sscan(sc.Text(), &l.Expiry, &l.MAC, &l.IP, &l.Hostname, &l.ClientID); err == nil {
			out = append(out, l)
		}
	}
	return out
}

// LeaseOf is the server's lease for ip, if any.
func (s *Server) LeaseOf(t testing.TB, ip string) (Lease, bool) {
	t.Helper()
	for _, l := range s.Leases(t) {
		if l.IP == ip {
			return l, true
		}
	}
	return Lease{}, false
}

// Plug connects netns to the server's bridge with a veth whose netns end is ifname (down,
// unconfigured: as a CNI plugin leaves it before IPAM runs).
func (s *Server) Plug(t testing.TB, netns ns.NetNS, ifname string) {
	t.Helper()
	host := "mdp" + testbed.RandomID()
	t.Cleanup(func() { testbed.DeleteLink(host) })
	br, err := netlinksafe.LinkByName(s.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host, MasterIndex: br.Attrs().Index},
		PeerName: ifname, PeerNamespace: netlink.NsFd(int(netns.Fd()))}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("veth %s to %s: %v", host, s.Bridge, err)
	}
	if out, err := exec.Command("ip", "link", "set", host, "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s up: %v %s", host, err, out)
	}
}
