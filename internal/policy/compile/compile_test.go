package compile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/multinet/multinet/internal/policy/spec"
)

// dump is a readable form of a result of Rules.
func dump(rs []Ruleset) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "\n  %s (%s) %v in=%s out=%s", r.IfName, r.Network, r.Policies,
			dumpDirection(r.Ingress), dumpDirection(r.Egress))
	}
	return b.String()
}

func dumpDirection(d *Direction) string {
	if d == nil {
		return "open"
	}
	parts := []string{}
	for _, a := range d.Allow {
		addrs := "any"
		if !a.Any {
			addrs = fmt.Sprint(a.Addrs)
		}
		parts = append(parts, fmt.Sprintf("%s:%v", addrs, a.Ports))
	}
	return "[" + strings.Join(parts, " | ") + "]"
}

func TestNoPolicySelectsThePod(t *testing.T) {
	check(t, nil, nil)
	check(t, []*spec.Policy{
		ingressFrom(policy("for-clients", "role=client", blue, red)),
		ingressFrom(&spec.Policy{Namespace: "ops", Name: "everyone", PodSelector: sel("{}"),
			Networks: []string{blue, red}, Ingress: true}),
	}, nil)
}

func TestPolicyForOtherNetworkHasNoEffect(t *testing.T) {
	check(t, []*spec.Policy{
		ingressFrom(policy("red-only", "role=server", red)),
		ingressFrom(policy("elsewhere", "{}", "net/green")),
	}, []Ruleset{
		{IfName: "net2", Network: red, Policies: []string{"app/red-only"}, Ingress: denyAll},
	})
}

func TestPolicyTypesDefaults(t *testing.T) {
	everything := rule(nil)
	for _, tc := range []struct {
		name     string
		policy   *spec.Policy
		in, eg   *Direction
		policies []string
	}{{
		name:   "ingress without rules denies all ingress, egress stays open",
		policy: ingressFrom(policy("p", "{}", blue)),
		in:     denyAll,
	}, {
		name:   "egress without rules denies all egress, ingress stays open",
		policy: egressTo(policy("p", "{}", blue)),
		eg:     denyAll,
	}, {
		name: "egress rules of a policy that does not isolate egress are ignored",
		policy: func() *spec.Policy {
			p := ingressFrom(policy("p", "{}", blue))
			p.EgressRules = []spec.Rule{everything}
			return p
		}(),
		in: denyAll,
	}, {
		name:   "an empty rule allows everything",
		policy: egressTo(ingressFrom(policy("p", "{}", blue), everything), everything),
		in:     allows(allow(nil)),
		eg:     allows(allow(nil)),
	}, {
		name:   "a policy isolating nothing lists the interface but filters nothing",
		policy: policy("p", "{}", blue),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, []*spec.Policy{tc.policy}, []Ruleset{
				{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Ingress: tc.in, Egress: tc.eg},
			})
		})
	}
}

func TestIngressStackedPoliciesAreOred(t *testing.T) {
	check(t, []*spec.Policy{
		ingressFrom(policy("monitor", "role=server", blue), rule(peers(pods("role=monitor", "team=ops")), tcp(9090))),
		ingressFrom(policy("clients", "{}", blue), rule(peers(pods("role=client", "")), tcp(80))),
		ingressFrom(policy("deny", "role=server", blue)),
	}, []Ruleset{{
		IfName: "net1", Network: blue, Policies: []string{"app/clients", "app/deny", "app/monitor"},
		Ingress: allows(
			allow(ports(pr(spec.TCP, 80, 80)), "10.1.0.11/32"),
			allow(ports(pr(spec.TCP, 9090, 9090)), "10.1.0.20/32"),
		),
	}})
}

func TestEgressAndIngressTogether(t *testing.T) {
	check(t, []*spec.Policy{
		egressTo(ingressFrom(policy("both", "role=server", blue, red),
			rule(peers(pods("role=client", "")))),
			rule(peers(pods("role=db", "")), tcp(5432))),
	}, []Ruleset{{
		IfName: "net1", Network: blue, Policies: []string{"app/both"},
		Ingress: allows(allow(nil, "10.1.0.11/32")),
		Egress:  allows(allow(ports(pr(spec.TCP, 5432, 5432)), "10.1.0.12/32")),
	}, {
		// db has no address on red: egress to it on red matches nothing.
		IfName: "net2", Network: red, Policies: []string{"app/both"},
		Ingress: allows(allow(nil, "10.2.0.11/32")),
		Egress:  denyAll,
	}})
}

func TestPodSelectorAlone(t *testing.T) {
	// Only the pods of the policy's namespace: not ops/client nor other/client.
	check(t, []*spec.Policy{
		ingressFrom(policy("p", "{}", blue, red), rule(peers(pods("role=client", "")))),
	}, []Ruleset{
		{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Ingress: allows(allow(nil, "10.1.0.11/32"))},
		{IfName: "net2", Network: red, Policies: []string{"app/p"}, Ingress: allows(allow(nil, "10.2.0.11/32"))},
	})
}

func TestNamespaceSelectorAlone(t *testing.T) {
	// Every pod of the matching namespaces, whatever its labels.
	check(t, []*spec.Policy{
		ingressFrom(policy("p", "{}", blue), rule(peers(pods("", "team in (ops,other)")))),
	}, []Ruleset{
		{IfName: "net1", Network: blue, Policies: []string{"app/p"},
			Ingress: allows(allow(nil, "10.1.0.20/31"))}, // .20 and .21 merged
	})
}

func TestNamespaceSelectorEverythingSkipsUnknownNamespaces(t *testing.T) {
	// {} selects every known namespace; ghost's pods are not in one.
	check(t, []*spec.Policy{
		ingressFrom(policy("p", "{}", blue), rule(peers(pods("role=client", "{}")))),
	}, []Ruleset{
		{IfName: "net1", Network: blue, Policies: []string{"app/p"},
			Ingress: allows(allow(nil, "10.1.0.11/32", "10.1.0.21/32"))},
	})
}

func TestNamespaceAndPodSelector(t *testing.T) {
	// Both: the clients of ops and other, not app's own client.
	check(t, []*spec.Policy{
		ingressFrom(policy("p", "{}", blue, red), rule(peers(pods("role=client", "team!=app")))),
	}, []Ruleset{
		{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Ingress: allows(allow(nil, "10.1.0.21/32"))},
		{IfName: "net2", Network: red, Policies: []string{"app/p"}, Ingress: allows(allow(nil, "10.2.0.31/32"))},
	})
}

func TestPeerWithoutAddressOnNetwork(t *testing.T) {
	// other/client is only on red: on blue, the rule matches nothing (deny), on red it is
	// its red address, not the blue one of any other pod.
	check(t, []*spec.Policy{
		egressTo(policy("p", "{}", blue, red), rule(peers(pods("", "team=other")), tcp(53))),
	}, []Ruleset{
		{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Egress: denyAll},
		{IfName: "net2", Network: red, Policies: []string{"app/p"},
			Egress: allows(allow(ports(pr(spec.TCP, 53, 53)), "10.2.0.31/32"))},
	})
}

func TestSelectorMatchingNoPod(t *testing.T) {
	// A selector that matches no pod allows nothing; another rule still allows its own.
	check(t, []*spec.Policy{
		ingressFrom(policy("p", "{}", blue), rule(peers(pods("role=nobody", "{}")))),
		ingressFrom(policy("q", "{}", blue), rule(peers(pods("", "team=nonexistent")), tcp(1))),
	}, []Ruleset{
		{IfName: "net1", Network: blue, Policies: []string{"app/p", "app/q"}, Ingress: denyAll},
	})
	check(t, []*spec.Policy{
		ingressFrom(policy("p", "{}", blue), rule(peers(pods("role=nobody", ""), pods("role=db", "")))),
	}, []Ruleset{
		{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Ingress: allows(allow(nil, "10.1.0.12/32"))},
	})
}

func TestIPBlockExcept(t *testing.T) {
	check(t, []*spec.Policy{
		ingressFrom(policy("p", "{}", blue),
			rule(peers(block("10.1.0.0/16", "10.1.0.0/24", "10.1.128.0/17")), udp(53))),
	}, []Ruleset{
		{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Ingress: allows(allow(ports(pr(spec.UDP, 53, 53)),
			"10.1.1.0/24", "10.1.2.0/23", "10.1.4.0/22", "10.1.8.0/21", "10.1.16.0/20",
			"10.1.32.0/19", "10.1.64.0/18"))},
	})
}

func TestMixedPeersAreOred(t *testing.T) {
	// A pod peer and a block in one rule: either. The pod inside the block adds nothing.
	check(t, []*spec.Policy{
		ingressFrom(policy("p", "{}", blue),
			rule(peers(block("192.168.0.0/24"), pods("role=client", ""), pods("role=db", "")))),
		ingressFrom(policy("q", "{}", blue), rule(peers(block("10.1.0.8/29")))),
	}, []Ruleset{
		{IfName: "net1", Network: blue, Policies: []string{"app/p", "app/q"},
			Ingress: allows(allow(nil, "10.1.0.8/29", "192.168.0.0/24"))},
	})
}

func TestEndPortRange(t *testing.T) {
	check(t, []*spec.Policy{
		ingressFrom(policy("p", "{}", blue), rule(nil,
			spec.Port{Protocol: spec.TCP, Number: 8000, End: 8100},
			tcp(8050), tcp(8101), tcp(9000), udp(53),
			spec.Port{Protocol: spec.SCTP}, // every SCTP port
		)),
	}, []Ruleset{
		{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Ingress: allows(allow(ports(
			pr(spec.SCTP, 0, 0), pr(spec.TCP, 8000, 8101), pr(spec.TCP, 9000, 9000), pr(spec.UDP, 53, 53))))},
	})
}

func TestNamedPortIngress(t *testing.T) {
	// Names resolve against the server's own ports, protocol included; unresolvable ones
	// match nothing, numeric ports of the same rule stay.
	check(t, []*spec.Policy{
		ingressFrom(policy("p", "{}", blue),
			rule(peers(pods("role=client", "")), named("http", spec.TCP), named("dns", spec.UDP)),
			rule(peers(pods("role=db", "")), named("http", spec.UDP)),
			rule(peers(pods("", "team=ops")), named("nope", spec.TCP), tcp(22))),
	}, []Ruleset{
		{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Ingress: allows(
			allow(ports(pr(spec.TCP, 22, 22)), "10.1.0.20/31"),
			allow(ports(pr(spec.TCP, 8080, 8080), pr(spec.UDP, 5353, 5353)), "10.1.0.11/32"),
		)},
	})
}

func TestNamedPortEgressPerPeer(t *testing.T) {
	// Each destination's own port: http is 8080 on the server itself, 9090 on the
	// monitor; pods without it (clients, db) get nothing; a numeric port of the same rule
	// stays for every peer.
	check(t, []*spec.Policy{
		egressTo(policy("p", "{}", blue),
			rule(peers(pods("", "{}")), named("http", spec.TCP), tcp(443))),
	}, []Ruleset{
		{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Egress: allows(
			allow(ports(pr(spec.TCP, 443, 443)), "10.1.0.10/31", "10.1.0.12/32", "10.1.0.20/31"),
			allow(ports(pr(spec.TCP, 8080, 8080)), "10.1.0.10/32"),
			allow(ports(pr(spec.TCP, 9090, 9090)), "10.1.0.20/32"),
		)},
	})
}

func TestNamedPortEgressBlockAndNoPeers(t *testing.T) {
	// Named ports to a block: the known pods inside it that have the port (not the monitor
	// nor the server: in the except); with no peers: every known pod that has it, the
	// server itself included. Pods are known by their namespace: not ghost's.
	server, ifaces, v := cluster()
	v.pods["ops"] = append(v.pods["ops"], withPorts(pod("ops/dns", "role=dns", blue+"=10.1.0.153"),
		NamedPort{Name: "dns", Protocol: spec.UDP, Port: 53}, NamedPort{Name: "http", Protocol: spec.TCP, Port: 80}))
	v.pods["ghost"][0].Ports = []NamedPort{{Name: "dns", Protocol: spec.UDP, Port: 1053}}
	got := Rules(server, ifaces, []*spec.Policy{
		egressTo(policy("block", "{}", blue), rule(peers(block("10.1.0.0/24", "10.1.0.0/26")), named("http", spec.TCP))),
		egressTo(policy("anywhere", "{}", blue), rule(nil, named("dns", spec.UDP))),
	}, v)
	want := []Ruleset{{IfName: "net1", Network: blue, Policies: []string{"app/anywhere", "app/block"}, Egress: allows(
		allow(ports(pr(spec.TCP, 80, 80)), "10.1.0.153/32"),
		allow(ports(pr(spec.UDP, 53, 53)), "10.1.0.153/32"),
		allow(ports(pr(spec.UDP, 5353, 5353)), "10.1.0.10/32"),
	)}}
	if !Equal(got, want) {
		t.Errorf("Rules:\n got %s\nwant %s", dump(got), dump(want))
	}
}

func TestDualStack(t *testing.T) {
	server := pod("app/server", "role=server", blue+"=10.1.0.10", blue+"=fd00:1::10")
	v := newView(map[string]string{"app": ""}, server,
		pod("app/client", "role=client", blue+"=10.1.0.11", blue+"=fd00:1::11"),
		pod("app/v6only", "role=client", blue+"=fd00:1::12"))
	got := Rules(server, []Interface{{IfName: "net1", Network: blue}}, []*spec.Policy{
		ingressFrom(policy("p", "{}", blue),
			rule(peers(pods("role=client", ""), block("fd00:2::/32", "fd00:2::/33"), block("0.0.0.0/0", "10.0.0.0/8")))),
	}, v)
	want := []Ruleset{{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Ingress: allows(allow(nil,
		"0.0.0.0/5", "8.0.0.0/7", "10.1.0.11/32", "11.0.0.0/8", "12.0.0.0/6", "16.0.0.0/4", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1",
		"fd00:1::11/128", "fd00:1::12/128", "fd00:2:8000::/33"))}}
	if !Equal(got, want) {
		t.Errorf("Rules:\n got %s\nwant %s", dump(got), dump(want))
	}
}

func TestAllowEverythingSubsumesTheRest(t *testing.T) {
	check(t, []*spec.Policy{
		ingressFrom(policy("narrow", "{}", blue), rule(peers(pods("role=client", "")), tcp(80))),
		ingressFrom(policy("wide", "{}", blue), rule(nil)),
	}, []Ruleset{
		{IfName: "net1", Network: blue, Policies: []string{"app/narrow", "app/wide"}, Ingress: allows(allow(nil))},
	})
}

func TestEqual(t *testing.T) {
	a := []Ruleset{{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Ingress: allows(allow(nil, "10.0.0.0/8"))}}
	for _, tc := range []struct {
		name string
		b    []Ruleset
		want bool
	}{
		{"same", []Ruleset{{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Ingress: allows(allow(nil, "10.0.0.0/8"))}}, true},
		{"other address", []Ruleset{{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Ingress: allows(allow(nil, "10.0.0.0/9"))}}, false},
		{"egress isolated", []Ruleset{{IfName: "net1", Network: blue, Policies: []string{"app/p"}, Ingress: allows(allow(nil, "10.0.0.0/8")), Egress: denyAll}}, false},
		{"other policy", []Ruleset{{IfName: "net1", Network: blue, Policies: []string{"app/q"}, Ingress: allows(allow(nil, "10.0.0.0/8"))}}, false},
		{"none", nil, false},
	} {
		if got := Equal(a, tc.b); got != tc.want {
			t.Errorf("%s: Equal = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !Equal([]Ruleset{{Ingress: &Direction{}}}, []Ruleset{{Ingress: &Direction{Allow: []Allow{}}}}) {
		t.Error("Equal: nil and empty allow lists differ")
	}
}
