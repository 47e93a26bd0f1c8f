package compile

import (
	"net/netip"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/multinet/multinet/internal/policy/spec"
)

// The networks of the fixture: blue carries net1 of the local pod, red net2.
const (
	blue = "net/blue"
	red  = "net/red"
)

// view is a View over fixed namespaces and pods.
type view struct {
	namespaces map[string]map[string]string
	order      []string
	pods       map[string][]*Pod
}

func (v *view) NamespaceLabels(name string) (map[string]string, bool) {
	l, ok := v.namespaces[name]
	return l, ok
}

func (v *view) Namespaces() []string  { return v.order }
func (v *view) Pods(ns string) []*Pod { return v.pods[ns] }

// newView is a view of namespaces (name, then labels as "k=v,...") and pods; pods of a
// namespace not listed exist but their namespace is unknown.
func newView(namespaces map[string]string, pods ...*Pod) *view {
	v := &view{namespaces: map[string]map[string]string{}, pods: map[string][]*Pod{}}
	for name, set := range namespaces {
		l, err := labels.ConvertSelectorToLabelsMap(set)
		if err != nil {
			panic(err)
		}
		v.namespaces[name] = l
		v.order = append(v.order, name)
	}
	for _, p := range pods {
		v.pods[p.Namespace] = append(v.pods[p.Namespace], p)
	}
	return v
}

// pod is a pod: "ns/name", labels "k=v,...", addresses "network=addr" each.
func pod(id, set string, addrs ...string) *Pod {
	ns, name := split(id, '/')
	l, err := labels.ConvertSelectorToLabelsMap(set)
	if err != nil {
		panic(err)
	}
	p := &Pod{Namespace: ns, Name: name, Labels: l, Addresses: map[string][]netip.Addr{}}
	for _, a := range addrs {
		network, addr := split(a, '=')
		p.Addresses[network] = append(p.Addresses[network], netip.MustParseAddr(addr))
	}
	return p
}

// withPorts is p with named ports.
func withPorts(p *Pod, ports ...NamedPort) *Pod {
	p.Ports = ports
	return p
}

func split(s string, sep byte) (string, string) {
	for i := range len(s) {
		if s[i] == sep {
			return s[:i], s[i+1:]
		}
	}
	panic("no separator in " + s)
}

// sel parses a label selector; "" is nil (no selector).
func sel(s string) labels.Selector {
	if s == "" {
		return nil
	}
	if s == "{}" {
		return labels.Everything()
	}
	sl, err := labels.Parse(s)
	if err != nil {
		panic(err)
	}
	return sl
}

// policy is a policy of namespace app selecting podSelector, for networks.
func policy(name, podSelector string, networks ...string) *spec.Policy {
	return &spec.Policy{Namespace: "app", Name: name, Networks: networks, PodSelector: sel(podSelector)}
}

// ingressFrom is p isolating ingress, with rules.
func ingressFrom(p *spec.Policy, rules ...spec.Rule) *spec.Policy {
	p.Ingress, p.IngressRules = true, rules
	return p
}

// egressTo is p isolating egress, with rules.
func egressTo(p *spec.Policy, rules ...spec.Rule) *spec.Policy {
	p.Egress, p.EgressRules = true, rules
	return p
}

func rule(peers []spec.Peer, ports ...spec.Port) spec.Rule {
	return spec.Rule{Peers: peers, Ports: ports}
}

func peers(ps ...spec.Peer) []spec.Peer { return ps }

func pods(podSelector, nsSelector string) spec.Peer {
	return spec.Peer{PodSelector: sel(podSelector), NamespaceSelector: sel(nsSelector)}
}

func block(cidr string, except ...string) spec.Peer {
	b := &spec.Block{CIDR: netip.MustParsePrefix(cidr)}
	for _, e := range except {
		b.Except = append(b.Except, netip.MustParsePrefix(e))
	}
	return spec.Peer{Block: b}
}

func tcp(n uint16) spec.Port                           { return spec.Port{Protocol: spec.TCP, Number: n} }
func udp(n uint16) spec.Port                           { return spec.Port{Protocol: spec.UDP, Number: n} }
func named(name string, proto spec.Protocol) spec.Port { return spec.Port{Protocol: proto, Name: name} }

// allow is an allow of addrs (none: any address) on ports.
func allow(ports []PortRange, addrs ...string) Allow {
	if len(addrs) == 0 {
		return Allow{Any: true, Ports: ports}
	}
	a := Allow{Ports: ports}
	for _, s := range addrs {
		a.Addrs = append(a.Addrs, netip.MustParsePrefix(s))
	}
	return a
}

func ports(rs ...PortRange) []PortRange { return rs }

func pr(proto spec.Protocol, first, last uint16) PortRange {
	return PortRange{Protocol: proto, First: first, Last: last}
}

func allows(as ...Allow) *Direction { return &Direction{Allow: as} }

// denyAll is an isolated direction that allows nothing.
var denyAll = &Direction{}

// cluster is the fixture: namespaces app, ops and other; app/server (the local pod) has
// net1 on blue and net2 on red.
func cluster() (*Pod, []Interface, *view) {
	server := withPorts(pod("app/server", "role=server", blue+"=10.1.0.10", red+"=10.2.0.10"),
		NamedPort{Name: "http", Protocol: spec.TCP, Port: 8080},
		NamedPort{Name: "dns", Protocol: spec.UDP, Port: 5353})
	v := newView(map[string]string{"app": "team=app", "ops": "team=ops", "other": "team=other"},
		server,
		pod("app/client", "role=client", blue+"=10.1.0.11", red+"=10.2.0.11"),
		withPorts(pod("app/db", "role=db", blue+"=10.1.0.12"),
			NamedPort{Name: "pg", Protocol: spec.TCP, Port: 5432}),
		withPorts(pod("ops/monitor", "role=monitor", blue+"=10.1.0.20"),
			NamedPort{Name: "http", Protocol: spec.TCP, Port: 9090}),
		pod("ops/client", "role=client", blue+"=10.1.0.21"),
		pod("other/client", "role=client", red+"=10.2.0.31"),
		pod("ghost/client", "role=client", blue+"=10.1.0.99"), // its namespace is unknown
	)
	ifaces := []Interface{{IfName: "net1", Network: blue}, {IfName: "net2", Network: red}}
	return server, ifaces, v
}

// check compares Rules for the fixture's server with want.
func check(t *testing.T, policies []*spec.Policy, want []Ruleset) {
	t.Helper()
	server, ifaces, v := cluster()
	got := Rules(server, ifaces, policies, v)
	if !Equal(got, want) {
		t.Errorf("Rules:\n got %s\nwant %s", dump(got), dump(want))
	}
}
