package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/multinet/multinet/internal/testbed"
)

// The test network: a pod (srv) with two secondary interfaces, net1 and net2, each a veth
// to a peer namespace (cli) holding several addresses on the other end, so that clients
// of different addresses are sockets bound to them.
//
//	srv net1 10.1.0.1 10.1.0.11 fd01::1 fd01::11  <->  cli c1 10.1.0.2-.5 fd01::2 fd01::3
//	srv net2 10.2.0.1 fd02::1                     <->  cli c2 10.2.0.2 fd02::2
var (
	srv1, srv1b   = addr("10.1.0.1"), addr("10.1.0.11")
	srv16, srv16b = addr("fd01::1"), addr("fd01::11")
	srv2, srv26   = addr("10.2.0.1"), addr("fd02::1")
	cliA, cliB    = addr("10.1.0.2"), addr("10.1.0.3")
	cliC, cliD    = addr("10.1.0.4"), addr("10.1.0.5")
	cliA6, cliB6  = addr("fd01::2"), addr("fd01::3")
	cli2, cli26   = addr("10.2.0.2"), addr("fd02::2")
)

// The ports every test server listens on, TCP and UDP, in both namespaces.
var testPorts = []int{7001, 7002, 7003, 7004}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

type topology struct {
	srv, cli ns.NetNS
}

// newTopology builds the test network with echo servers on testPorts in both namespaces,
// and DHCP-port echo servers (srv 68 and 546, cli 67 and 547); all of it goes in t.Cleanup.
func newTopology(t *testing.T) *topology {
	t.Helper()
	testbed.RequireRoot(t)
	tp := &topology{srv: testbed.NewNetNS(t), cli: testbed.NewNetNS(t)}
	srvAddrs := []netip.Addr{srv1, srv1b, srv16, srv16b}
	cliAddrs := []netip.Addr{cliA, cliB, cliC, cliD, cliA6, cliB6}
	tp.veth(t, "net1", "c1", srvAddrs, cliAddrs)
	tp.veth(t, "net2", "c2", []netip.Addr{srv2, srv26}, []netip.Addr{cli2, cli26})
	// A server per address: a UDP socket bound to the wildcard would answer from the
	// interface's first address, not from the one the client sent to.
	for n, addrs := range map[ns.NetNS][]netip.Addr{
		tp.srv: append(srvAddrs, srv2, srv26), tp.cli: append(cliAddrs, cli2, cli26),
	} {
		for _, a := range addrs {
			for _, p := range testPorts {
				echoServers(t, n, to(a, p).String())
			}
		}
	}
	echoServers(t, tp.srv, "10.1.0.1:68", "[fd01::1]:546")
	echoServers(t, tp.cli, "10.1.0.3:67", "[fd01::3]:547")
	return tp
}

// veth links srv's srvName to cli's cliName and gives each end its addresses.
func (tp *topology) veth(t *testing.T, srvName, cliName string, srvAddrs, cliAddrs []netip.Addr) {
	t.Helper()
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: srvName, Namespace: netlink.NsFd(int(tp.srv.Fd()))},
		PeerName:      cliName,
		PeerNamespace: netlink.NsFd(int(tp.cli.Fd())),
	}
	if err := netlink.LinkAdd(v); err != nil {
		t.Fatalf("adding veth %s/%s: %v", srvName, cliName, err)
	}
	configure(t, tp.srv, srvName, srvAddrs)
	configure(t, tp.cli, cliName, cliAddrs)
}

// configure brings lo and ifName up in netns and adds addrs (/24 or /64, no DAD).
func configure(t *testing.T, netns ns.NetNS, ifName string, addrs []netip.Addr) {
	t.Helper()
	err := netns.Do(func(ns.NetNS) error {
		for _, name := range []string{"lo", ifName} {
			l, err := netlinksafe.LinkByName(name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
		}
		l, err := netlinksafe.LinkByName(ifName)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			bits := 24
			if a.Is6() {
				bits = 64
			}
			p := netip.PrefixFrom(a, bits)
			n := &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}
			if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: n, Flags: unix.IFA_F_NODAD}); err != nil {
				return fmt.Errorf("address %s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("configuring %s in %s: %v", ifName, netns.Path(), err)
	}
}

// echoServers listens TCP and UDP on each address in netns and echoes what it reads.
func echoServers(t *testing.T, netns ns.NetNS, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		var tl net.Listener
		var ul net.PacketConn
		err := netns.Do(func(ns.NetNS) error {
			var err error
			if tl, err = net.Listen("tcp", a); err != nil {
				return err
			}
			t.Cleanup(func() { tl.Close() })
			ul, err = net.ListenPacket("udp", a)
			if err == nil {
				t.Cleanup(func() { _ = ul.Close() })
			}
			return err
		})
		if err != nil {
			t.Fatalf("listening on %s in %s: %v", a, netns.Path(), err)
		}
		go serveTCP(tl)
		go serveUDP(ul)
	}
}

func serveTCP(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			if err == nil {
				_, _ = c.Write(buf[:n])
			}
		}()
	}
}

func serveUDP(c net.PacketConn) {
	buf := make([]byte, 64)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = c.WriteTo(buf[:n], from)
	}
}

// probe is one client's attempt: from a namespace and address (and port, 0: any) to a
// destination, TCP, UDP or ping; Want says whether it must get its echo back.
type probe struct {
	From    ns.NetNS
	Proto   string // "tcp", "udp" or "ping"
	Src     netip.Addr
	SrcPort int
	Dst     netip.AddrPort
	Want    bool
}

func (p probe) String() string {
	verb := "passes"
	if !p.Want {
		verb = "is dropped"
	}
	return fmt.Sprintf("%s %s:%d -> %s %s", p.Proto, p.Src, p.SrcPort, p.Dst, verb)
}

// denyWait is how long a probe that must not pass waits for an answer; one that must pass
// gets passWait.
const (
	denyWait = 300 * time.Millisecond
	passWait = 3 * time.Second
)

// check runs the probes at once and fails t for each whose outcome is not the wanted one.
func check(t *testing.T, probes ...probe) {
	t.Helper()
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Go(func() {
			err := p.run()
			if p.Want && err != nil {
				t.Errorf("%s: %v", p, err)
			}
			if !p.Want && err == nil {
				t.Errorf("%s: it got its answer", p)
			}
		})
	}
	wg.Wait()
}

// run sends a message and waits for its echo; nil when it came back.
func (p probe) run() error {
	wait := denyWait
	if p.Want {
		wait = passWait
	}
	return p.From.Do(func(ns.NetNS) error {
		if p.Proto == "ping" {
			return ping(p.Src, p.Dst.Addr(), wait)
		}
		var local net.Addr = &net.TCPAddr{IP: p.Src.AsSlice(), Port: p.SrcPort}
		if p.Proto == "udp" {
			local = &net.UDPAddr{IP: p.Src.AsSlice(), Port: p.SrcPort}
		}
		d := net.Dialer{LocalAddr: local, Timeout: wait}
		c, err := d.Dial(p.Proto, p.Dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		return echo(c, wait)
	})
}

func echo(c net.Conn, wait time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	msg := []byte("multinet")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != string(msg) {
		return fmt.Errorf("echo %q, want %q", buf[:n], msg)
	}
	return nil
}

// ping sends one ICMP or ICMPv6 echo request from src to dst and waits for its reply.
func ping(src, dst netip.Addr, wait time.Duration) error {
	network, request, reply := "ip4:icmp", byte(8), byte(0)
	if dst.Is6() {
		network, request, reply = "ip6:ipv6-icmp", 128, 129
	}
	c, err := net.ListenPacket(network, src.String())
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	id := byte(time.Now().UnixNano())
	msg := []byte{request, 0, 0, 0, 0x4d, id, 0, 1}
	if dst.Is4() {
		sum := checksum(msg)
		msg[2], msg[3] = byte(sum>>8), byte(sum)
	} // the kernel fills in ICMPv6 checksums
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return err
	}
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		if n >= 8 && buf[0] == reply && buf[4] == 0x4d && buf[5] == id {
			return nil
		}
	}
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// to is a destination address and port.
func to(a netip.Addr, port int) netip.AddrPort { return netip.AddrPortFrom(a, uint16(port)) }
