package integration

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

// dhcpServer is dnsmasq serving 10.40.<n>.0/24 from its own netns, on a host bridge the
// pods of a test attach to. Nothing of it routes via the host's own interfaces.
type dhcpServer struct {
	Bridge    string // host bridge, the pods' network
	Addr      string // the server's address, 10.40.<n>.1
	Subnet    string // 10.40.<n>.0/24
	LeaseFile string
	netns     ns.NetNS
	dir       string
	cmd       *exec.Cmd
	exited    chan struct{}
	args      []string
}

// newDHCPServer wires the server's netns to a new bridge and starts dnsmasq with the
// extra dnsmasq arguments (options to send). Everything is removed at cleanup.
func newDHCPServer(t *testing.T, n int, extra ...string) *dhcpServer {
	t.Helper()
	id := testbed.RandomID()
	s := &dhcpServer{Bridge: "mdh" + id, Addr: fmt.Sprintf("10.40.%d.1", n), Subnet: fmt.Sprintf("10.40.%d.0/24", n),
		netns: testbed.NewNetNS(t), dir: t.TempDir()}
	s.LeaseFile = filepath.Join(s.dir, "leases")
	masterLink(t, s.Bridge)
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
		"--log-facility=" + filepath.Join(s.dir, "dnsmasq.log"),
		"--dhcp-leasefile=" + s.LeaseFile, "--pid-file=" + filepath.Join(s.dir, "pid"),
		fmt.Sprintf("--dhcp-range=10.40.%d.10,10.40.%d.250,255.255.255.0,2m", n, n)}, extra...)
	s.Start(t)
	return s
}

func (s *dhcpServer) inNetns(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + s.netns.Path()}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in the DHCP server's netns: %s: %v %s", strings.Join(args, " "), err, out)
	}
}

// Start runs dnsmasq (again, after Stop) and waits until it listens.
func (s *dhcpServer) Start(t *testing.T) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=" + s.netns.Path(), "dnsmasq"}, s.args...)...)
	out, err := os.Create(filepath.Join(s.dir, "dnsmasq.out"))
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
		if log, _ := os.ReadFile(filepath.Join(s.dir, "dnsmasq.log")); strings.Contains(string(log), "DHCP, IP range") {
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

// Stop ends dnsmasq (its lease file stays).
func (s *dhcpServer) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

func (s *dhcpServer) Log() string {
	a, _ := os.ReadFile(filepath.Join(s.dir, "dnsmasq.out"))
	b, _ := os.ReadFile(filepath.Join(s.dir, "dnsmasq.log"))
	lines := strings.Split(string(b), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return string(a) + strings.Join(lines, "\n")
}

// serverLease is one line of dnsmasq's lease file.
type serverLease struct {
	Expiry   int64
	MAC, IP  string
	Hostname string
	ClientID string
}

// Leases reads dnsmasq's lease file.
func (s *dhcpServer) Leases(t *testing.T) []serverLease {
	t.Helper()
	f, err := os.Open(s.LeaseFile)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []serverLease
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l serverLease
		if _, err := fmt.Sscan(sc.Text(), &l.Expiry, &l.MAC, &l.IP, &l.Hostname, &l.ClientID); err == nil {
			out = append(out, l)
		}
	}
	return out
}

// LeaseOf is the server's lease for ip, if any.
func (s *dhcpServer) LeaseOf(t *testing.T, ip string) (serverLease, bool) {
	t.Helper()
	for _, l := range s.Leases(t) {
		if l.IP == ip {
			return l, true
		}
	}
	return serverLease{}, false
}
