package integration

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/multinet/multinet/internal/policy/firewall"
	"github.com/multinet/multinet/internal/policy/spec"
	"github.com/multinet/multinet/internal/testbed"
)

// The ports every pod of a policy test serves, on TCP and UDP both (echo servers).
const (
	port1 = 7001
	port2 = 7002
	port3 = 7003
)

var (
	servedPorts = []int{port1, port2, port3}
	protocols   = []string{"tcp", "udp"}
)

// Probe timings: a cell expected denied gets one attempt of denyWait (its packets are
// dropped, so the attempt times out); one expected allowed is retried until allowWithin
// (rules follow an event asynchronously), each attempt bounded by attemptWait.
const (
	denyWait    = 400 * time.Millisecond
	attemptWait = 300 * time.Millisecond
	allowWithin = 15 * time.Second
)

// world is what the subtests of TestPolicy share: one control plane, one node (multinetd
// with policy enforcement on, as by default) and a dynamic client for MultiNetworkPolicies.
type world struct {
	*testbed.Node
	dyn dynamic.Interface
	top *testing.T // TestPolicy's: a daemon restarted by a subtest stops at its end
	mu  sync.Mutex
	n   int // scenes made: each gets its own subnets and bridges
}

// scene is one subtest's world: a namespace (labelled), a bridge network "net" in it, and
// the pods and policies the subtest makes, all removed at cleanup.
type scene struct {
	w   *world
	ns  string
	num int
	v4  bool
	v6  bool
}

// newScene creates a namespace with labels and the bridge network "net" on a bridge of
// its own: IPv4, IPv6 or both by families ("4", "6", "46").
func (w *world) newScene(t *testing.T, families string, nsLabels map[string]string) *scene {
	t.Helper()
	w.mu.Lock()
	w.n++
	s := &scene{w: w, num: w.n, v4: strings.Contains(families, "4"), v6: strings.Contains(families, "6")}
	w.mu.Unlock()
	s.ns = fmt.Sprintf("p%d-%s", s.num, w.ID)
	w.namespace(t, s.ns, nsLabels)
	s.network(t, s.ns, "net", 0)
	return s
}

// namespace creates a namespace with labels, deleted at cleanup.
func (w *world) namespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := w.CP.Client.CoreV1().Namespaces().Create(testbed.Ctx(t), obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.CP.Client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// bridge is the name of the host bridge of the scene's network idx.
func (s *scene) bridge(idx int) string { return fmt.Sprintf("mp%d%c%s", s.num, 'a'+idx, s.w.ID) }

// subnet is the scene's network idx's IPv4 or IPv6 subnet; host-local allocates up to .200
// (::c8), the addresses above are for the pods of "other nodes".
func (s *scene) subnet(idx int, v6 bool) (prefix, rangeEnd string) {
	if v6 {
		return fmt.Sprintf("fd77:%d:%d::/64", s.num, idx), fmt.Sprintf("fd77:%d:%d::c8", s.num, idx)
	}
	return fmt.Sprintf("10.77.%d.0/24", s.num*4+idx), fmt.Sprintf("10.77.%d.200", s.num*4+idx)
}

// network creates NAD name in namespace: a bridge network (the scene's idx-th) with the
// scene's families. Its bridge is made here, so that pods of "other nodes" can be wired
// to it before any ADD.
func (s *scene) network(t *testing.T, namespace, name string, idx int) {
	t.Helper()
	br := s.bridge(idx)
	if out, err := exec.Command("ip", "link", "add", br, "type", "bridge").CombinedOutput(); err != nil {
		t.Fatalf("ip link add %s: %v %s", br, err, out)
	}
	t.Cleanup(func() { testbed.DeleteLink(br) })
	if out, err := exec.Command("ip", "link", "set", br, "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s up: %v %s", br, err, out)
	}
	var ranges []string
	for _, v6 := range []bool{false, true} {
		if (v6 && s.v6) || (!v6 && s.v4) {
			sub, end := s.subnet(idx, v6)
			ranges = append(ranges, fmt.Sprintf(`[{"subnet":%q,"rangeEnd":%q}]`, sub, end))
		}
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"bridge","bridge":%q,"isGateway":false,"ipMasq":false,
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[%s]}}`, name, br, s.w.IPAMDir, strings.Join(ranges, ","))
	s.w.CP.CreateNAD(t, namespace, name, conf)
}

// peer is a pod a probe goes from or to: its netns and its addresses on the network
// probed (the scene's "net" unless said otherwise).
type peer struct {
	name  string
	netns ns.NetNS
	v4    netip.Addr
	v6    netip.Addr
	sb    *testbed.Sandbox // nil for a pod of another node
}

// podSpec is what a test pod has beyond its name.
type podSpec struct {
	namespace string // the scene's when empty
	labels    map[string]string
	networks  string // the networks annotation; "net" when empty
	ports     []corev1.ContainerPort
}

// createPod creates the Pod object on node, deleted at cleanup.
func (s *scene) createPod(t *testing.T, name, node string, p podSpec, annotations map[string]string) *corev1.Pod {
	t.Helper()
	automount := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.namespace, Labels: p.labels, Annotations: annotations},
		Spec: corev1.PodSpec{NodeName: node, AutomountServiceAccountToken: &automount,
			Containers: []corev1.Container{{Name: "main", Image: "pause", Ports: p.ports}}},
	}
	pods := s.w.CP.Client.CoreV1().Pods(p.namespace)
	created, err := pods.Create(testbed.Ctx(t), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s/%s: %v", p.namespace, name, err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		_ = pods.Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	return created
}

func (s *scene) defaults(p podSpec) podSpec {
	if p.namespace == "" {
		p.namespace = s.ns
	}
	if p.networks == "" {
		p.networks = "net"
	}
	return p
}

// sandbox creates a pod of this node and its netns, with echo servers on servedPorts;
// not ADDed yet.
func (s *scene) sandbox(t *testing.T, name string, p podSpec) *testbed.Sandbox {
	t.Helper()
	p = s.defaults(p)
	pod := s.createPod(t, name, testbed.NodeName, p, map[string]string{networks: p.networks})
	sb := &testbed.Sandbox{Pod: pod, Netns: testbed.NewNetNS(t), ID: "c" + testbed.RandomID() + testbed.RandomID()}
	serve(t, sb.Netns)
	return sb
}

// add ADDs the sandbox (DELed at cleanup) and returns it as a peer on its interface ifname.
func (s *scene) add(t *testing.T, sb *testbed.Sandbox, ifname string) *peer {
	t.Helper()
	s.w.MustAdd(t, sb)
	t.Cleanup(func() { _ = s.w.Del(t, sb) })
	return s.peerOf(t, sb, ifname)
}

// local creates and ADDs a pod of this node; it is a peer on net1.
func (s *scene) local(t *testing.T, name string, p podSpec) *peer {
	t.Helper()
	return s.add(t, s.sandbox(t, name, p), "net1")
}

// peerOf is a local pod as a peer on its interface ifname.
func (s *scene) peerOf(t *testing.T, sb *testbed.Sandbox, ifname string) *peer {
	t.Helper()
	p := &peer{name: sb.Pod.Name, netns: sb.Netns, sb: sb}
	p.v4, p.v6 = addrsOn(t, sb.Netns, ifname)
	if (s.v4 && !p.v4.IsValid()) || (s.v6 && !p.v6.IsValid()) {
		t.Fatalf("pod %s: %s has addresses %v %v, want the scene's families", sb.Pod.Name, ifname, p.v4, p.v6)
	}
	return p
}

// addrsOn are the global IPv4 and IPv6 addresses on ifname in netns (invalid when none).
func addrsOn(t *testing.T, netns ns.NetNS, ifname string) (v4, v6 netip.Addr) {
	t.Helper()
	v4, v6, err := addrsIn(netns, ifname)
	if err != nil {
		t.Fatalf("addresses of %s: %v", ifname, err)
	}
	return v4, v6
}

// addrsIn is addrsOn with an error when the link is not there (yet).
func addrsIn(netns ns.NetNS, ifname string) (v4, v6 netip.Addr, err error) {
	err = netns.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(ifname)
		if err != nil {
			return err
		}
		addrs, err := netlinksafe.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok || ip.IsLinkLocalUnicast() {
				continue
			}
			ip = ip.Unmap()
			if ip.Is4() && !v4.IsValid() {
				v4 = ip
			} else if ip.Is6() && !v6.IsValid() {
				v6 = ip
			}
		}
		return nil
	})
	return v4, v6, err
}

// remote makes a pod of another node: a Pod object bound to "other-node" whose
// network-status (written here, as that node's multinetd would) gives it address host
// (.host of the scene's IPv4 subnet, ::host of its IPv6 one) on the scene's network idx, and
// a netns wired to that network's bridge with those addresses, serving servedPorts, so that
// its packets are real.
func (s *scene) remote(t *testing.T, name string, host, idx int, p podSpec) *peer {
	t.Helper()
	p = s.defaults(p)
	r := &peer{name: name, netns: testbed.NewNetNS(t)}
	var ips []string
	if s.v4 {
		sub, _ := s.subnet(idx, false)
		b := netip.MustParsePrefix(sub).Addr().As4()
		b[3] = byte(host)
		r.v4 = netip.AddrFrom4(b)
		ips = append(ips, r.v4.String())
	}
	if s.v6 {
		sub, _ := s.subnet(idx, true)
		b := netip.MustParsePrefix(sub).Addr().As16()
		b[15] = byte(host)
		r.v6 = netip.AddrFrom16(b)
		ips = append(ips, r.v6.String())
	}
	s.createPod(t, name, "other-node", p, map[string]string{networks: p.networks, nadv1.NetworkStatusAnnot: s.status(t, idx, ips...)})
	s.wire(t, r, idx)
	serve(t, r.netns)
	return r
}

// status is the network-status of a pod of another node with ips on the scene's network idx.
func (s *scene) status(t *testing.T, idx int, ips ...string) string {
	t.Helper()
	raw, err := json.Marshal([]nadv1.NetworkStatus{
		{Name: "cluster", Interface: "eth0", Default: true, IPs: []string{"10.245.0.1"}},
		{Name: s.ns + "/" + s.networkName(idx), Interface: "net1", IPs: ips},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// moved rewrites the network-status of the scene's pod of another node name: its address
// on the scene's network is now ip (as that node's multinetd would write after a change).
func (s *scene) moved(t *testing.T, name string, ip netip.Addr) {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		nadv1.NetworkStatusAnnot: s.status(t, 0, ip.String())}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.w.CP.Client.CoreV1().Pods(s.ns).Patch(testbed.Ctx(t), name, k8stypes.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

func (s *scene) networkName(idx int) string {
	if idx == 0 {
		return "net"
	}
	return fmt.Sprintf("net%d", idx)
}

// wire plugs r's netns into the bridge of the scene's network idx with a veth, named net1
// inside, holding r's addresses (no duplicate address detection: usable at once).
func (s *scene) wire(t *testing.T, r *peer, idx int) {
	t.Helper()
	host := "mr" + testbed.RandomID() + testbed.RandomID()
	inside := "tmp" + host[2:]
	br, err := netlinksafe.LinkByName(s.bridge(idx))
	if err != nil {
		t.Fatal(err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host, MasterIndex: br.Attrs().Index}, PeerName: inside}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("veth %s: %v", host, err)
	}
	t.Cleanup(func() { testbed.DeleteLink(host) })
	if err := netlink.LinkSetUp(veth); err != nil {
		t.Fatal(err)
	}
	in, err := netlinksafe.LinkByName(inside)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetNsFd(in, int(r.netns.Fd())); err != nil {
		t.Fatal(err)
	}
	err = r.netns.Do(func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(inside)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetName(l, "net1"); err != nil {
			return err
		}
		for _, a := range []netip.Addr{r.v4, r.v6} {
			if !a.IsValid() {
				continue
			}
			bits := 24
			if a.Is6() {
				bits = 64
			}
			n := &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}
			if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: n, Flags: unix.IFA_F_NODAD}); err != nil {
				return err
			}
		}
		return netlink.LinkSetUp(l)
	})
	if err != nil {
		t.Fatalf("wiring %s: %v", r.name, err)
	}
}

// serve runs TCP and UDP echo servers on servedPorts (every address, both families) in
// netns until cleanup. The sockets are made inside the netns and stay in it.
func serve(t *testing.T, netns ns.NetNS) {
	t.Helper()
	var closers []io.Closer
	err := netns.Do(func(ns.NetNS) error {
		for _, port := range servedPorts {
			l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
			if err != nil {
				return err
			}
			closers = append(closers, l)
			go echoTCP(l)
			c, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
			if err != nil {
				return err
			}
			closers = append(closers, c)
			go echoUDP(c)
		}
		return nil
	})
	t.Cleanup(func() {
		for _, c := range closers {
			c.Close()
		}
	})
	if err != nil {
		t.Fatalf("servers in %s: %v", netns.Path(), err)
	}
}

func echoTCP(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.Copy(c, c)
		}()
	}
}

func echoUDP(c net.PacketConn) {
	buf := make([]byte, 512)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = c.WriteTo(buf[:n], from)
	}
}

// errBlocked: the probe got no answer in time (its packets were dropped).
var errBlocked = errors.New("no answer (blocked)")

// probe sends one message from netns to dst over proto ("tcp" or "udp") and waits up to
// wait for its echo: nil when it came back, errBlocked when nothing came, another error
// when something answered otherwise (a reset, an ICMP error).
func probe(netns ns.NetNS, proto string, dst netip.AddrPort, wait time.Duration) error {
	err := netns.Do(func(ns.NetNS) error {
		deadline := time.Now().Add(wait)
		c, err := (&net.Dialer{Deadline: deadline}).Dial(proto, dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetDeadline(deadline); err != nil {
			return err
		}
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		buf := make([]byte, 1)
		_, err = io.ReadFull(c, buf)
		return err
	})
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errBlocked
	}
	return err
}

// cell is one entry of a truth table: from a client to a server's address and port.
type cell struct {
	from, to *peer
	v6       bool
	proto    string
	port     int
	allow    bool
}

func (c cell) dst() netip.AddrPort {
	a := c.to.v4
	if c.v6 {
		a = c.to.v6
	}
	return netip.AddrPortFrom(a, uint16(c.port))
}

func (c cell) String() string {
	return fmt.Sprintf("%s -> %s %s/%d (%s)", c.from.name, c.to.name, c.proto, c.port, c.dst().Addr())
}

// table is every cell from clients to servers over the families given, servedPorts and
// both protocols, allowed as allow says. A pod is never its own client.
func table(clients, servers []*peer, families string, allow func(from, to *peer, proto string, port int) bool) []cell {
	var out []cell
	for _, fam := range families {
		for _, from := range clients {
			for _, to := range servers {
				if from == to {
					continue
				}
				for _, proto := range protocols {
					for _, port := range servedPorts {
						out = append(out, cell{from: from, to: to, v6: fam == '6', proto: proto, port: port,
							allow: allow(from, to, proto, port)})
					}
				}
			}
		}
	}
	return out
}

// expect checks a truth table once rules have followed the last event (asynchronously):
// every cell gets through or is dropped as expected within allowWithin, then every denied
// cell is dropped at its first attempt, and every allowed one gets through at once.
// Cells are probed concurrently.
func expect(t *testing.T, w *world, cells []cell) {
	t.Helper()
	report(t, w, "to converge within "+allowWithin.String(), each(cells, eventually))
	expectDenied(t, w, deniedOf(cells))
	report(t, w, "allowed (again)", each(allowedOf(cells), func(c cell) error { return probe(c.from.netns, c.proto, c.dst(), time.Second) }))
}

// expectDenied probes every cell once: each must be dropped, at the first attempt.
func expectDenied(t *testing.T, w *world, cells []cell) {
	t.Helper()
	report(t, w, "denied", each(cells, func(c cell) error { return dropped(probe(c.from.netns, c.proto, c.dst(), denyWait)) }))
}

// dropped is nil when a probe's outcome is a drop: no answer, or the client's own egress
// rules refused to send it (EPERM, what a local socket sees of a drop in its output hook).
func dropped(err error) error {
	switch {
	case err == nil:
		return errors.New("got through")
	case errors.Is(err, errBlocked), errors.Is(err, syscall.EPERM):
		return nil
	default:
		return fmt.Errorf("answered, not dropped: %w", err)
	}
}

// eventually probes a cell until it gets through (allowed) or is dropped (denied), for up
// to allowWithin.
func eventually(c cell) error {
	deadline := time.Now().Add(allowWithin)
	for {
		var err error
		if c.allow {
			err = probe(c.from.netns, c.proto, c.dst(), attemptWait)
		} else {
			err = dropped(probe(c.from.netns, c.proto, c.dst(), denyWait))
		}
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond) // a refused or passed probe returns at once
	}
}

// each runs check on every cell concurrently and returns the failures.
func each(cells []cell, check func(cell) error) []string {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var fails []string
	for _, c := range cells {
		wg.Go(func() {
			if err := check(c); err != nil {
				mu.Lock()
				fails = append(fails, fmt.Sprintf("%s: %v", c, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return fails
}

func report(t *testing.T, w *world, what string, fails []string) {
	t.Helper()
	if len(fails) > 0 {
		t.Fatalf("%d cells expected %s failed:\n  %s\ndaemon log:\n%s", len(fails), what, strings.Join(fails, "\n  "), w.Log())
	}
}

// ping sends one ICMP echo from netns to dst, waiting up to a second.
func ping(netns ns.NetNS, dst netip.Addr) error {
	out, err := exec.Command("nsenter", "--net="+netns.Path(), "ping", "-c", "1", "-W", "1", dst.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s: %w %s", dst, err, out)
	}
	return nil
}

// policy is a MultiNetworkPolicy of the scene's namespace, as a test writes it.
type policy struct {
	version  string // spec.V1beta2 unless said
	name     string
	networks string // the policy-for annotation; "net" when empty
	spec     string // the spec, JSON
}

func (s *scene) object(t *testing.T, p policy) *unstructured.Unstructured {
	t.Helper()
	if p.version == "" {
		p.version = spec.V1beta2
	}
	if p.networks == "" {
		p.networks = "net"
	}
	u := &unstructured.Unstructured{}
	raw := fmt.Sprintf(`{"apiVersion":%q,"kind":%q,"metadata":{"name":%q,"namespace":%q,"annotations":{%q:%q}},"spec":%s}`,
		spec.Group+"/"+p.version, spec.Kind, p.name, s.ns, spec.PolicyForAnnotation, p.networks, p.spec)
	if err := u.UnmarshalJSON([]byte(raw)); err != nil {
		t.Fatalf("policy %s: %v\n%s", p.name, err, raw)
	}
	return u
}

func (s *scene) policies(version string) dynamic.ResourceInterface {
	if version == "" {
		version = spec.V1beta2
	}
	return s.w.dyn.Resource(spec.GroupVersionResource(version)).Namespace(s.ns)
}

// create creates the policy, deleted at cleanup.
func (s *scene) create(t *testing.T, p policy) {
	t.Helper()
	res := s.policies(p.version)
	if _, err := res.Create(testbed.Ctx(t), s.object(t, p), metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating MultiNetworkPolicy %s: %v", p.name, err)
	}
	t.Cleanup(func() { _ = res.Delete(context.Background(), p.name, metav1.DeleteOptions{}) })
}

// update replaces the policy's spec and networks.
func (s *scene) update(t *testing.T, p policy) {
	t.Helper()
	res := s.policies(p.version)
	cur, err := res.Get(testbed.Ctx(t), p.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u := s.object(t, p)
	u.SetResourceVersion(cur.GetResourceVersion())
	if _, err := res.Update(testbed.Ctx(t), u, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("updating MultiNetworkPolicy %s: %v", p.name, err)
	}
}

func (s *scene) delete(t *testing.T, name string) {
	t.Helper()
	if err := s.policies("").Delete(testbed.Ctx(t), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// label merges labels (a nil value removes the label) into a pod's or, with pod "", the
// namespace's labels.
func (s *scene) label(t *testing.T, namespace, pod string, labels map[string]any) {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		t.Fatal(err)
	}
	core := s.w.CP.Client.CoreV1()
	if pod == "" {
		_, err = core.Namespaces().Patch(testbed.Ctx(t), namespace, k8stypes.MergePatchType, patch, metav1.PatchOptions{})
	} else {
		_, err = core.Pods(namespace).Patch(testbed.Ctx(t), pod, k8stypes.MergePatchType, patch, metav1.PatchOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// chains reads multinet's table in netns back from the kernel.
func chains(t *testing.T, netns ns.NetNS) []firewall.Chain {
	t.Helper()
	got, err := firewall.Read(netns.Path())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// holdTable creates, in netns, a table inet multinet owned by a netlink socket of the
// test (NFT_TABLE_F_OWNER): while the socket is open the kernel refuses anyone else's
// change to that table, so programming a pod's rules there fails for real. release closes
// the socket; the kernel then drops the table.
func holdTable(t *testing.T, netns ns.NetNS) (release func()) {
	t.Helper()
	var fd int
	err := netns.Do(func(ns.NetNS) error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		return nftBatch(fd, newOwnedTable(firewall.TableName))
	})
	if err != nil {
		t.Fatalf("holding table %s: %v", firewall.TableName, err)
	}
	once := sync.OnceFunc(func() { _ = unix.Close(fd) })
	t.Cleanup(once)
	return once
}

// nftTableOwner is NFT_TABLE_F_OWNER of linux/netfilter/nf_tables.h (not in x/sys/unix).
const nftTableOwner = 0x2

// newOwnedTable is the NFT_MSG_NEWTABLE message of an inet table with the owner flag.
func newOwnedTable(name string) []byte {
	attrs := nlAttr(unix.NFTA_TABLE_NAME, append([]byte(name), 0))
	flags := make([]byte, 4)
	flags[3] = nftTableOwner // big endian
	attrs = append(attrs, nlAttr(unix.NFTA_TABLE_FLAGS, flags)...)
	return nlMsg(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWTABLE, unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE, unix.NFPROTO_INET, attrs, 2)
}

// nftBatch sends msg inside a batch and reads the kernel's acknowledgement.
func nftBatch(fd int, msg []byte) error {
	var b []byte
	b = append(b, nlMsg(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, unix.AF_UNSPEC, nil, 1, unix.NFNL_SUBSYS_NFTABLES)...)
	b = append(b, msg...)
	b = append(b, nlMsg(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, unix.AF_UNSPEC, nil, 3, unix.NFNL_SUBSYS_NFTABLES)...)
	if err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
				return syscall.Errno(-code)
			}
		}
	}
	return nil
}

// nlMsg is a netfilter netlink message: header, nfgenmsg (family, version 0, resource id
// res, big endian), attributes.
func nlMsg(typ, flags int, family int, attrs []byte, seq uint32, res ...uint16) []byte {
	length := unix.NLMSG_HDRLEN + 4 + len(attrs)
	b := make([]byte, unix.NLMSG_HDRLEN+4, length)
	binary.NativeEndian.PutUint32(b[0:], uint32(length))
	binary.NativeEndian.PutUint16(b[4:], uint16(typ))
	binary.NativeEndian.PutUint16(b[6:], uint16(flags))
	binary.NativeEndian.PutUint32(b[8:], seq)
	b[16] = byte(family)
	if len(res) > 0 {
		b[18], b[19] = byte(res[0]>>8), byte(res[0])
	}
	return append(b, attrs...)
}

// nlAttr is one netlink attribute, padded to 4 bytes.
func nlAttr(typ int, data []byte) []byte {
	l := 4 + len(data)
	b := make([]byte, 4, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], uint16(typ))
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
