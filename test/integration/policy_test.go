package integration

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"

	"github.com/multinet/multinet/internal/testbed"
)

// Labels of the pods of the policy tests.
var (
	app   = map[string]string{"role": "app"}
	db    = map[string]string{"role": "db"}
	other = map[string]string{"role": "other"}
)

// TestPolicy: MultiNetworkPolicy enforced by multinetd on the secondary interfaces of real
// netns pods, with real packets. Each scenario is a truth table: for every client, server,
// port and protocol, a TCP or UDP echo gets through or is dropped, exactly as NetworkPolicy
// semantics say, on the networks the policy is for. Peers include pods of "another node"
// (Pod objects with their network-status, and a netns wired to the same bridge).
func TestPolicy(t *testing.T) {
	testbed.RequireRoot(t)
	cp := testbed.StartControlPlane(t)
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{Node: testbed.NewNode(t, cp), dyn: dyn, top: t}
	for _, c := range []struct {
		name string
		f    func(*testing.T, *world)
	}{
		{"IngressPodSelectorFromTheFirstPacket", testPolicyIngress},
		{"Egress", testPolicyEgress},
		{"BothDirectionsRepliesPass", testPolicyBoth},
		{"IPBlockExcept", testPolicyIPBlock},
		{"StackedPoliciesOred", testPolicyStacked},
		{"NamespaceSelectorAloneAndWithPodSelector", testPolicyNamespaceSelector},
		{"NamedPorts", testPolicyNamedPorts},
		{"EndPortRange", testPolicyEndPort},
		{"IPv6UnderDenyAll", testPolicyIPv6},
		{"DualStack", testPolicyDualStack},
		{"SelectorsMatchingNoPod", testPolicyNoMatch},
		{"OtherNetworkUntouched", testPolicyOtherNetwork},
		{"ChangesFollow", testPolicyChanges},
		{"HotplugFilteredAtOnceUnplugLeavesNoChain", testPolicyHotplug},
		{"RulesNotProgrammedFailTheAdd", testPolicyProgrammingFails},
		{"RestartKeepsAndUpdatesRules", testPolicyRestart},
	} {
		t.Run(c.name, func(t *testing.T) { c.f(t, w) })
	}
}

// only is an allow function: traffic into the servers passes from the clients listed on
// the ports listed ("tcp/7001"), everything else passes.
func only(servers []*peer, clients []*peer, ports ...string) func(from, to *peer, proto string, port int) bool {
	return func(from, to *peer, proto string, port int) bool {
		if !slices.Contains(servers, to) {
			return true
		}
		return slices.Contains(clients, from) && (len(ports) == 0 || slices.Contains(ports, fmt.Sprintf("%s/%d", proto, port)))
	}
}

// deniedOf and allowedOf are the cells of a table expected denied, allowed.
func deniedOf(cells []cell) []cell {
	return slices.DeleteFunc(slices.Clone(cells), func(c cell) bool { return c.allow })
}

func allowedOf(cells []cell) []cell {
	return slices.DeleteFunc(slices.Clone(cells), func(c cell) bool { return !c.allow })
}

// testPolicyIngress: pods labelled app (here and on another node) reach the db pod on
// TCP 7001 and UDP 7002 only; others nothing; the db pod reaches everyone. A second db
// pod is filtered by the very first probe after its ADD returns. ICMP echo is dropped.
func testPolicyIngress(t *testing.T, w *world) {
	s := w.newScene(t, "4", nil)
	a := s.local(t, "a", podSpec{labels: app})
	b := s.local(t, "b", podSpec{labels: other})
	r := s.remote(t, "r", 250, 0, podSpec{labels: app})
	s.create(t, policy{name: "db-from-app", spec: `{"podSelector":{"matchLabels":{"role":"db"}},"policyTypes":["Ingress"],
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"app"}}}],"ports":[{"protocol":"TCP","port":7001},{"protocol":"UDP","port":7002}]}]}`})
	srv := s.local(t, "srv", podSpec{labels: db})
	all := []*peer{a, b, r, srv}
	expect(t, w, table(all, all, "4", only([]*peer{srv}, []*peer{a, r}, "tcp/7001", "udp/7002")))

	srv2 := s.local(t, "srv2", podSpec{labels: db})
	cells := table([]*peer{a, b, r}, []*peer{srv2}, "4", only([]*peer{srv2}, []*peer{a, r}, "tcp/7001", "udp/7002"))
	expectDenied(t, w, deniedOf(cells)) // no retry: the rules were in before the ADD returned
	expect(t, w, cells)

	if err := ping(a.netns, srv.v4); err == nil {
		t.Errorf("ICMP echo from a to srv passed; without --policy-accept-icmp-echo only what a rule allows passes")
	}
	if err := ping(srv.netns, a.v4); err != nil {
		t.Errorf("ICMP echo from srv to a (no policy on that path): %v", err)
	}
}

// testPolicyEgress: the app pod may only reach db pods (here and remote) on TCP 7001;
// its replies to clients pass; other pods are not filtered.
func testPolicyEgress(t *testing.T, w *world) {
	s := w.newScene(t, "4", nil)
	s.create(t, policy{name: "app-to-db", spec: `{"podSelector":{"matchLabels":{"role":"app"}},"policyTypes":["Egress"],
		"egress":[{"to":[{"podSelector":{"matchLabels":{"role":"db"}}}],"ports":[{"protocol":"TCP","port":7001}]}]}`})
	a := s.local(t, "a", podSpec{labels: app})
	b := s.local(t, "b", podSpec{labels: other})
	d := s.local(t, "d", podSpec{labels: db})
	r := s.remote(t, "r", 250, 0, podSpec{labels: db})
	all := []*peer{a, b, d, r}
	expect(t, w, table(all, all, "4", func(from, to *peer, proto string, port int) bool {
		return from != a || (to == d || to == r) && proto == "tcp" && port == port1
	}))
}

// testPolicyBoth: the db pod accepts app pods on every port and may send nothing itself:
// the replies of what it accepted still pass.
func testPolicyBoth(t *testing.T, w *world) {
	s := w.newScene(t, "4", nil)
	s.create(t, policy{name: "db-closed", spec: `{"podSelector":{"matchLabels":{"role":"db"}},"policyTypes":["Ingress","Egress"],
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"app"}}}]}],"egress":[]}`})
	a := s.local(t, "a", podSpec{labels: app})
	b := s.local(t, "b", podSpec{labels: other})
	srv := s.local(t, "srv", podSpec{labels: db})
	r := s.remote(t, "r", 250, 0, podSpec{labels: app})
	all := []*peer{a, b, srv, r}
	expect(t, w, table(all, all, "4", func(from, to *peer, _ string, _ int) bool {
		switch {
		case from == srv:
			return false
		case to == srv:
			return from == a || from == r
		}
		return true
	}))
}

// testPolicyIPBlock: the db pod accepts the network's /24 except one pod's /32 and the
// /28 the remote pod is in.
func testPolicyIPBlock(t *testing.T, w *world) {
	s := w.newScene(t, "4", nil)
	a := s.local(t, "a", podSpec{labels: app})
	b := s.local(t, "b", podSpec{labels: app})
	r := s.remote(t, "r", 250, 0, podSpec{labels: app})
	srv := s.local(t, "srv", podSpec{labels: db})
	sub, _ := s.subnet(0, false)
	near := netip.PrefixFrom(r.v4, 28).Masked()
	s.create(t, policy{name: "db-from-block", spec: fmt.Sprintf(`{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"ipBlock":{"cidr":%q,"except":[%q,%q]}}]}]}`, sub, a.v4.String()+"/32", near)})
	all := []*peer{a, b, r, srv}
	expect(t, w, table(all, all, "4", only([]*peer{srv}, []*peer{b})))
}

// testPolicyStacked: two policies select the db pod, one of v1beta1: what either allows
// passes.
func testPolicyStacked(t *testing.T, w *world) {
	s := w.newScene(t, "4", nil)
	s.create(t, policy{name: "tcp-from-app", spec: `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"app"}}}],"ports":[{"protocol":"TCP","port":7001}]}]}`})
	s.create(t, policy{version: "v1beta1", name: "udp-from-other", spec: `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"other"}}}],"ports":[{"protocol":"UDP","port":7002}]}]}`})
	a := s.local(t, "a", podSpec{labels: app})
	b := s.local(t, "b", podSpec{labels: other})
	c := s.local(t, "c", podSpec{labels: map[string]string{"role": "third"}})
	srv := s.local(t, "srv", podSpec{labels: db})
	all := []*peer{a, b, c, srv}
	expect(t, w, table(all, all, "4", func(from, to *peer, proto string, port int) bool {
		return to != srv || from == a && proto == "tcp" && port == port1 || from == b && proto == "udp" && port == port2
	}))
}

// testPolicyNamespaceSelector: the db pod accepts every pod of the namespaces labelled
// team=y (not its own), then, edited, only their app pods.
func testPolicyNamespaceSelector(t *testing.T, w *world) {
	s := w.newScene(t, "4", map[string]string{"team": "x"})
	ns2 := s.ns + "-y"
	w.namespace(t, ns2, map[string]string{"team": "y"})
	onNet := s.ns + "/net"
	a := s.local(t, "a", podSpec{labels: app})
	srv := s.local(t, "srv", podSpec{labels: db})
	c := s.local(t, "c", podSpec{namespace: ns2, networks: onNet, labels: app})
	d := s.local(t, "d", podSpec{namespace: ns2, networks: onNet, labels: other})
	r := s.remote(t, "r", 250, 0, podSpec{namespace: ns2, networks: onNet, labels: app})
	all := []*peer{a, srv, c, d, r}
	p := policy{name: "db-from-team-y", spec: `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"team":"y"}}}]}]}`}
	s.create(t, p)
	expect(t, w, table(all, all, "4", only([]*peer{srv}, []*peer{c, d, r})))
	p.spec = `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"team":"y"}},"podSelector":{"matchLabels":{"role":"app"}}}]}]}`
	s.update(t, p)
	expect(t, w, table(all, all, "4", only([]*peer{srv}, []*peer{c, r})))
}

// testPolicyNamedPorts: ports named by the containers, resolved per pod: the db pod's
// "web" (TCP 7002) and "dns" (UDP 7003) for ingress; for the app pod's egress, each
// destination's own "web" (the remote db pod's is TCP 7001).
func testPolicyNamedPorts(t *testing.T, w *world) {
	s := w.newScene(t, "4", nil)
	web := func(port int32) corev1.ContainerPort { return corev1.ContainerPort{Name: "web", ContainerPort: port} }
	dns := corev1.ContainerPort{Name: "dns", ContainerPort: port3, Protocol: corev1.ProtocolUDP}
	s.create(t, policy{name: "db-web-dns", spec: `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"app"}}}],"ports":[{"port":"web"},{"protocol":"UDP","port":"dns"}]}]}`})
	s.create(t, policy{name: "app-to-web", spec: `{"podSelector":{"matchLabels":{"role":"app"}},"policyTypes":["Egress"],
		"egress":[{"to":[{"podSelector":{}}],"ports":[{"port":"web"}]}]}`})
	a := s.local(t, "a", podSpec{labels: app})
	b := s.local(t, "b", podSpec{labels: other})
	srv := s.local(t, "srv", podSpec{labels: db, ports: []corev1.ContainerPort{web(port2), dns}})
	r := s.remote(t, "r", 250, 0, podSpec{labels: db, ports: []corev1.ContainerPort{web(port1)}})
	all := []*peer{a, b, srv, r}
	expect(t, w, table(all, all, "4", func(from, to *peer, proto string, port int) bool {
		switch {
		case from == a && to == srv:
			return proto == "tcp" && port == port2
		case from == a:
			return to == r && proto == "tcp" && port == port1
		case to == srv:
			return false
		}
		return true
	}))
}

// testPolicyEndPort: a v1beta2 port range, TCP 7001-7002, from app pods.
func testPolicyEndPort(t *testing.T, w *world) {
	s := w.newScene(t, "4", nil)
	s.create(t, policy{name: "db-range", spec: `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"app"}}}],"ports":[{"protocol":"TCP","port":7001,"endPort":7002}]}]}`})
	a := s.local(t, "a", podSpec{labels: app})
	b := s.local(t, "b", podSpec{labels: other})
	srv := s.local(t, "srv", podSpec{labels: db})
	all := []*peer{a, b, srv}
	expect(t, w, table(all, all, "4", only([]*peer{srv}, []*peer{a}, "tcp/7001", "tcp/7002")))
}

// testPolicyIPv6: an IPv6-only network; the db pod accepts app pods on TCP 7001 and may
// send nothing: the allowed flows work, so neighbour discovery passes both directions.
func testPolicyIPv6(t *testing.T, w *world) {
	s := w.newScene(t, "6", nil)
	s.create(t, policy{name: "db-v6", spec: `{"podSelector":{"matchLabels":{"role":"db"}},"policyTypes":["Ingress","Egress"],
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"app"}}}],"ports":[{"protocol":"TCP","port":7001}]}]}`})
	a := s.local(t, "a", podSpec{labels: app})
	b := s.local(t, "b", podSpec{labels: other})
	srv := s.local(t, "srv", podSpec{labels: db})
	r := s.remote(t, "r", 250, 0, podSpec{labels: app})
	all := []*peer{a, b, srv, r}
	expect(t, w, table(all, all, "6", func(from, to *peer, proto string, port int) bool {
		switch {
		case from == srv:
			return false
		case to == srv:
			return (from == a || from == r) && proto == "tcp" && port == port1
		}
		return true
	}))
}

// testPolicyDualStack: on a dual-stack network a peer pod is both its addresses.
func testPolicyDualStack(t *testing.T, w *world) {
	s := w.newScene(t, "46", nil)
	s.create(t, policy{name: "db-dual", spec: `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"app"}}}]}]}`})
	a := s.local(t, "a", podSpec{labels: app})
	b := s.local(t, "b", podSpec{labels: other})
	srv := s.local(t, "srv", podSpec{labels: db})
	r := s.remote(t, "r", 250, 0, podSpec{labels: app})
	all := []*peer{a, b, srv, r}
	expect(t, w, table(all, all, "46", only([]*peer{srv}, []*peer{a, r})))
}

// testPolicyNoMatch: a policy whose podSelector selects no pod changes nothing; one whose
// only peer selector matches no pod denies all ingress.
func testPolicyNoMatch(t *testing.T, w *world) {
	s := w.newScene(t, "4", nil)
	s.create(t, policy{name: "selects-nobody", spec: `{"podSelector":{"matchLabels":{"role":"ghost"}},"policyTypes":["Ingress","Egress"]}`})
	s.create(t, policy{name: "from-nobody", spec: `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"nobody":"here"}}}]}]}`})
	a := s.local(t, "a", podSpec{labels: app})
	b := s.local(t, "b", podSpec{labels: other})
	srv := s.local(t, "srv", podSpec{labels: db})
	all := []*peer{a, b, srv}
	expect(t, w, table(all, all, "4", only([]*peer{srv}, nil)))
}

// testPolicyOtherNetwork: pods on two networks; a deny-all policy for the second one
// leaves the first one's traffic alone.
func testPolicyOtherNetwork(t *testing.T, w *world) {
	s := w.newScene(t, "4", nil)
	s.network(t, s.ns, "net1", 1)
	s.create(t, policy{name: "deny-net1", networks: "net1", spec: `{"podSelector":{"matchLabels":{"role":"db"}},"policyTypes":["Ingress","Egress"]}`})
	both := podSpec{networks: "net,net1"}
	var first, second []*peer
	for _, name := range []string{"a", "srv"} {
		p := both
		p.labels = map[string]string{"role": name}
		if name == "srv" {
			p.labels = db
		}
		sb := s.sandbox(t, name, p)
		first = append(first, s.add(t, sb, "net1"))
		second = append(second, s.peerOf(t, sb, "net2"))
	}
	expect(t, w, table(second, second, "4", func(*peer, *peer, string, int) bool { return false }))
	expect(t, w, table(first, first, "4", func(*peer, *peer, string, int) bool { return true }))
}

// testPolicyChanges: rules follow every event: a client labelled, the policy edited, the
// namespace labelled and unlabelled, a pod of another node moved to another address, the
// policy deleted.
func testPolicyChanges(t *testing.T, w *world) {
	s := w.newScene(t, "4", nil)
	a := s.local(t, "a", podSpec{labels: app})
	b := s.local(t, "b", podSpec{labels: other})
	srv := s.local(t, "srv", podSpec{labels: db})
	r := s.remote(t, "r", 250, 0, podSpec{labels: app})
	// elsewhere is a host at the address r moves to
	elsewhere := &peer{name: "r's next address", netns: testbed.NewNetNS(t), v4: r.v4.Next()}
	s.wire(t, elsewhere, 0)
	serve(t, elsewhere.netns)
	clients, servers := []*peer{a, b, r, elsewhere}, []*peer{srv}
	p := policy{name: "db", spec: `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"app"}}}]}]}`}
	s.create(t, p)
	expect(t, w, table(clients, servers, "4", only(servers, []*peer{a, r})))
	s.label(t, s.ns, "b", map[string]any{"role": "app"})
	expect(t, w, table(clients, servers, "4", only(servers, []*peer{a, b, r})))
	s.moved(t, "r", elsewhere.v4)
	expect(t, w, table(clients, servers, "4", only(servers, []*peer{a, b, elsewhere})))
	p.spec = `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"env":"ok"}}}]}]}`
	s.update(t, p)
	expect(t, w, table(clients, servers, "4", only(servers, nil)))
	s.label(t, s.ns, "", map[string]any{"env": "ok"})
	expect(t, w, table(clients, servers, "4", only(servers, []*peer{a, b, elsewhere})))
	s.label(t, s.ns, "", map[string]any{"env": nil})
	expect(t, w, table(clients, servers, "4", only(servers, nil)))
	s.delete(t, p.name)
	expect(t, w, table(clients, servers, "4", only(servers, clients)))
	if got := chains(t, srv.netns); len(got) != 0 {
		t.Errorf("policy deleted, chains left in srv: %+v", got)
	}
}

// testPolicyHotplug: a network a policy is for, hot-plugged into a running pod, is filtered
// from the moment its interface has an address; unplugged, its chain goes.
func testPolicyHotplug(t *testing.T, w *world) {
	s := w.newScene(t, "4", nil)
	s.network(t, s.ns, "net1", 1)
	s.create(t, policy{name: "db-from-app", spec: `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"app"}}}],"ports":[{"protocol":"TCP","port":7001}]}]}`})
	s.create(t, policy{name: "net1-closed", networks: "net1", spec: `{"podSelector":{"matchLabels":{"role":"db"}},"policyTypes":["Ingress"]}`})
	a := s.local(t, "a", podSpec{labels: app})
	b := s.local(t, "b", podSpec{labels: other})
	sb := s.sandbox(t, "srv", podSpec{labels: db, networks: "net1"})
	s.add(t, sb, "net1")
	waitChains(t, sb, "in-net1")

	e := &env{Node: w.Node, ns: s.ns}
	e.annotate(t, sb, "net1,net")
	var srv *peer
	for deadline := time.Now().Add(20 * time.Second); srv == nil; time.Sleep(time.Millisecond) {
		if v4, _, _ := addrsIn(sb.Netns, "net2"); v4.IsValid() {
			srv = &peer{name: "srv", netns: sb.Netns, v4: v4, sb: sb}
		} else if time.Now().After(deadline) {
			t.Fatalf("net2 never got an address\n%s", w.Log())
		}
	}
	cells := table([]*peer{a, b}, []*peer{srv}, "4", only([]*peer{srv}, []*peer{a}, "tcp/7001"))
	expectDenied(t, w, deniedOf(cells)) // at once: no unfiltered moment
	expect(t, w, cells)
	waitChains(t, sb, "in-net1", "in-net2")

	e.annotate(t, sb, "net1")
	e.waitLinks(t, sb, "eth0", "net1")
	waitChains(t, sb, "in-net1")
}

// waitChains waits until multinet's table in the pod has exactly the chains want
// ("in-net1", "out-net2"), read back from the kernel.
func waitChains(t *testing.T, sb *testbed.Sandbox, want ...string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got = got[:0]
		for _, c := range chains(t, sb.Netns) {
			prefix := "in-"
			if c.Direction == "egress" {
				prefix = "out-"
			}
			got = append(got, prefix+c.IfName)
		}
		if slices.Equal(got, want) {
			return
		}
	}
	t.Fatalf("pod %s: chains %v, want %v", sb.Pod.Name, got, want)
}

// testPolicyProgrammingFails: when a pod's rules cannot be programmed (its netns holds a
// table named multinet that another process owns) the ADD fails, with a NetworkPolicyFailed
// Warning on the pod, and leaves nothing: no interface, and not its address among the peers
// other pods allow (that address is free again: whoever gets it next is not that pod).
// Once the table is gone the runtime's retry succeeds.
func testPolicyProgrammingFails(t *testing.T, w *world) {
	s := w.newScene(t, "4", nil)
	s.create(t, policy{name: "app-egress", spec: `{"podSelector":{"matchLabels":{"role":"app"}},"policyTypes":["Egress"],"egress":[{}]}`})
	s.create(t, policy{name: "db-from-app", spec: `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"app"}}}]}]}`})
	srv := s.local(t, "srv", podSpec{labels: db})
	waitChains(t, srv.sb, "in-net1")

	x := s.sandbox(t, "x", podSpec{labels: app})
	release := holdTable(t, x.Netns)
	_, err := w.Add(t, x)
	if err == nil || !strings.Contains(err.Error(), "network policy") {
		t.Fatalf("ADD with the table held by another process: %v, want a network policy error", err)
	}
	for _, ev := range w.WaitEvent(t, x.Pod, "NetworkPolicyFailed") {
		if ev.Reason == "NetworkPolicyFailed" && ev.Type != corev1.EventTypeWarning {
			t.Errorf("NetworkPolicyFailed Event of type %s, want Warning", ev.Type)
		}
	}
	if got := testbed.Links(t, x.Netns); len(got) != 0 {
		t.Errorf("failed ADD left interfaces %v", got)
	}

	ghost := &peer{name: "x's released address", netns: testbed.NewNetNS(t), v4: lastReserved(t, w, s)}
	s.wire(t, ghost, 0)
	serve(t, ghost.netns)
	z := s.local(t, "z", podSpec{labels: app})
	expect(t, w, table([]*peer{z, ghost}, []*peer{srv}, "4", only([]*peer{srv}, []*peer{z})))

	release()
	s.add(t, x, "net1")
	waitChains(t, x, "out-net1")
}

// lastReserved is the address host-local handed out last on the scene's network "net": the
// one a failed ADD got and gave back.
func lastReserved(t *testing.T, w *world, s *scene) netip.Addr {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(w.IPAMDir, "net", "last_reserved_ip.0"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := netip.ParseAddr(strings.TrimSpace(string(raw)))
	sub, _ := s.subnet(0, false)
	if err != nil || !netip.MustParsePrefix(sub).Contains(a) {
		t.Fatalf("host-local's last reserved address %q (%v), want one of %s", raw, err, sub)
	}
	return a
}

// testPolicyRestart: rules stay in the pods while multinetd is down (kernel state); a
// policy edited meanwhile and a new option (ICMP echo accepted) are in force after it
// restarts, from its records.
func testPolicyRestart(t *testing.T, w *world) {
	s := w.newScene(t, "4", nil)
	p := policy{name: "db-from-app", spec: `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"app"}}}],"ports":[{"protocol":"TCP","port":7001}]}]}`}
	s.create(t, p)
	a := s.local(t, "a", podSpec{labels: app})
	b := s.local(t, "b", podSpec{labels: other})
	srv := s.local(t, "srv", podSpec{labels: db})
	clients, servers := []*peer{a, b}, []*peer{srv}
	before := table(clients, servers, "4", only(servers, []*peer{a}, "tcp/7001"))
	expect(t, w, before)
	if err := ping(a.netns, srv.v4); err == nil {
		t.Fatal("ICMP echo passed an isolated direction without --policy-accept-icmp-echo")
	}

	w.Kill9()
	expect(t, w, before)
	p.spec = `{"podSelector":{"matchLabels":{"role":"db"}},
		"ingress":[{"from":[{"podSelector":{"matchExpressions":[{"key":"role","operator":"In","values":["app","other"]}]}}],"ports":[{"protocol":"TCP","port":7001}]}]}`
	s.update(t, p)
	w.Start(w.top, "--policy-accept-icmp-echo") // stopped after the pods' DELs
	expect(t, w, table(clients, servers, "4", only(servers, clients, "tcp/7001")))
	deadline := time.Now().Add(allowWithin)
	for err := ping(b.netns, srv.v4); err != nil; err = ping(b.netns, srv.v4) {
		if time.Now().After(deadline) {
			t.Fatalf("ICMP echo still dropped after restarting with --policy-accept-icmp-echo: %v", err)
		}
	}
}
