package firewall

import (
	"net/netip"
	"testing"

	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/spec"
)

// in is a probe from the client namespace to srv's net1 address of src's family.
func in(proto string, src netip.Addr, port int, want bool) func(*topology) probe {
	return func(tp *topology) probe {
		dst := srv1
		if src.Is6() {
			dst = srv16
		}
		return probe{From: tp.cli, Proto: proto, Src: src, Dst: to(dst, port), Want: want}
	}
}

// out is a probe from srv's net1 address of dst's family to dst in the client namespace.
func out(proto string, dst netip.Addr, port int, want bool) func(*topology) probe {
	return func(tp *topology) probe {
		src := srv1
		if dst.Is6() {
			src = srv16
		}
		return probe{From: tp.srv, Proto: proto, Src: src, Dst: to(dst, port), Want: want}
	}
}

// viaNet2 is a probe from the client to srv over net2, the interface without rules.
func viaNet2(proto string, src netip.Addr, want bool) func(*topology) probe {
	return func(tp *topology) probe {
		dst := srv2
		if src.Is6() {
			dst = srv26
		}
		return probe{From: tp.cli, Proto: proto, Src: src, Dst: to(dst, 7001), Want: want}
	}
}

func prefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

func allowFrom(ss ...string) compile.Allow { return compile.Allow{Addrs: prefixes(ss...)} }

func ports(p spec.Protocol, first, last uint16) compile.PortRange {
	return compile.PortRange{Protocol: p, First: first, Last: last}
}

func allow(as ...compile.Allow) *compile.Direction { return &compile.Direction{Allow: as} }

var denyAll = &compile.Direction{}

type scenario struct {
	name            string
	ingress, egress *compile.Direction
	opts            Options
	probes          []func(*topology) probe
}

// run programs the scenario's ruleset on srv's net1 and checks every probe.
func (s scenario) run(t *testing.T) {
	tp := newTopology(t)
	rs := []compile.Ruleset{{IfName: "net1", Network: "default/red", Ingress: s.ingress, Egress: s.egress}}
	if err := Program(tp.srv.Path(), rs, s.opts); err != nil {
		t.Fatalf("Program: %v", err)
	}
	probes := make([]probe, len(s.probes))
	for i, p := range s.probes {
		probes[i] = p(tp)
	}
	check(t, probes...)
}

func TestIngressTruthTable(t *testing.T) {
	for _, s := range []scenario{{
		name:    "allow by prefix",
		ingress: allow(allowFrom("10.1.0.2/32")),
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, true), in("udp", cliA, 7002, true),
			in("tcp", cliB, 7001, false), in("udp", cliB, 7002, false),
		},
	}, {
		// 10.1.0.0/29 except 10.1.0.3/32, as the compiler splits it.
		name:    "allow by prefixes with a hole",
		ingress: allow(allowFrom("10.1.0.0/31", "10.1.0.2/32", "10.1.0.4/30")),
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, true), in("tcp", cliB, 7001, false),
			in("tcp", cliC, 7001, true), in("udp", cliD, 7001, true), in("udp", cliB, 7001, false),
		},
	}, {
		name:    "allow by port",
		ingress: allow(compile.Allow{Any: true, Ports: []compile.PortRange{ports(spec.TCP, 7001, 7001)}}),
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, true), in("tcp", cliB, 7001, true),
			in("tcp", cliA, 7002, false), in("udp", cliA, 7001, false),
		},
	}, {
		name: "allow by port range",
		ingress: allow(compile.Allow{Any: true, Ports: []compile.PortRange{
			ports(spec.TCP, 7002, 7003), ports(spec.UDP, 7003, 7004)}}),
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, false), in("tcp", cliA, 7002, true), in("tcp", cliA, 7003, true),
			in("tcp", cliA, 7004, false), in("udp", cliA, 7002, false), in("udp", cliA, 7003, true),
			in("udp", cliA, 7004, true),
		},
	}, {
		name:    "allow UDP not TCP",
		ingress: allow(compile.Allow{Any: true, Ports: []compile.PortRange{ports(spec.UDP, 0, 0)}}),
		probes: []func(*topology) probe{
			in("udp", cliA, 7001, true), in("udp", cliB, 7004, true),
			in("tcp", cliA, 7001, false), in("tcp", cliB, 7004, false),
		},
	}, {
		name:    "allow TCP not UDP",
		ingress: allow(compile.Allow{Any: true, Ports: []compile.PortRange{ports(spec.TCP, 0, 0)}}),
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, true), in("tcp", cliB, 7004, true),
			in("udp", cliA, 7001, false), in("udp", cliB, 7004, false),
		},
	}, {
		name:    "allow by prefix and port",
		ingress: allow(compile.Allow{Addrs: prefixes("10.1.0.2/32"), Ports: []compile.PortRange{ports(spec.TCP, 7001, 0)}}),
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, true), in("tcp", cliA, 7002, false), in("tcp", cliB, 7001, false),
		},
	}, {
		// One set of addresses per family, shared by the rules of the two port ranges.
		name: "allow by prefixes and two port ranges",
		ingress: allow(compile.Allow{
			Addrs: prefixes("10.1.0.0/31", "10.1.0.2/32", "10.1.0.4/30", "fd01::2/128", "fd01::8/125"),
			Ports: []compile.PortRange{ports(spec.TCP, 7001, 0), ports(spec.UDP, 7003, 7004)},
		}),
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, true), in("udp", cliA, 7004, true), in("udp", cliC, 7003, true),
			in("tcp", cliA6, 7001, true), in("udp", cliA6, 7003, true),
			in("tcp", cliB, 7001, false), in("udp", cliB, 7003, false), in("tcp", cliC, 7002, false),
			in("udp", cliA, 7001, false), in("tcp", cliB6, 7001, false), in("udp", cliB6, 7004, false),
		},
	}, {
		name:    "deny all leaves the interface without rules alone",
		ingress: denyAll,
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, false), in("udp", cliA, 7001, false), in("tcp", cliA6, 7001, false),
			viaNet2("tcp", cli2, true), viaNet2("udp", cli2, true), viaNet2("tcp", cli26, true),
		},
	}, {
		name:    "an allow of no address matches nothing",
		ingress: allow(compile.Allow{}, compile.Allow{Ports: []compile.PortRange{ports(spec.TCP, 7001, 0)}}),
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, false), in("udp", cliA, 7001, false),
		},
	}, {
		name:    "allow any",
		ingress: allow(compile.Allow{Any: true}),
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, true), in("udp", cliB, 7004, true), in("tcp", cliA6, 7002, true),
		},
	}} {
		t.Run(s.name, s.run)
	}
}

func TestEgressTruthTable(t *testing.T) {
	for _, s := range []scenario{{
		name:   "allow by prefix",
		egress: allow(allowFrom("10.1.0.2/32")),
		probes: []func(*topology) probe{
			out("tcp", cliA, 7001, true), out("udp", cliA, 7002, true),
			out("tcp", cliB, 7001, false), out("udp", cliB, 7002, false),
		},
	}, {
		name:   "allow by prefixes with a hole",
		egress: allow(allowFrom("10.1.0.0/31", "10.1.0.2/32", "10.1.0.4/30")),
		probes: []func(*topology) probe{
			out("tcp", cliA, 7001, true), out("tcp", cliB, 7001, false),
			out("tcp", cliC, 7001, true), out("udp", cliD, 7001, true), out("udp", cliB, 7001, false),
		},
	}, {
		name:   "allow by port",
		egress: allow(compile.Allow{Any: true, Ports: []compile.PortRange{ports(spec.UDP, 7002, 0)}}),
		probes: []func(*topology) probe{
			out("udp", cliA, 7002, true), out("udp", cliB, 7002, true),
			out("udp", cliA, 7001, false), out("tcp", cliA, 7002, false),
		},
	}, {
		name: "allow by port range",
		egress: allow(compile.Allow{Any: true, Ports: []compile.PortRange{
			ports(spec.TCP, 7001, 7002), ports(spec.UDP, 7003, 7004)}}),
		probes: []func(*topology) probe{
			out("tcp", cliA, 7001, true), out("tcp", cliA, 7002, true), out("tcp", cliA, 7003, false),
			out("udp", cliA, 7002, false), out("udp", cliA, 7003, true), out("udp", cliA, 7004, true),
		},
	}, {
		name:   "allow TCP not UDP",
		egress: allow(compile.Allow{Any: true, Ports: []compile.PortRange{ports(spec.TCP, 0, 0)}}),
		probes: []func(*topology) probe{
			out("tcp", cliA, 7001, true), out("udp", cliA, 7001, false),
		},
	}, {
		name:   "allow UDP not TCP",
		egress: allow(compile.Allow{Any: true, Ports: []compile.PortRange{ports(spec.UDP, 0, 0)}}),
		probes: []func(*topology) probe{
			out("udp", cliA, 7001, true), out("tcp", cliA, 7001, false),
		},
	}, {
		name:   "deny all",
		egress: denyAll,
		probes: []func(*topology) probe{
			out("tcp", cliA, 7001, false), out("udp", cliA, 7001, false), out("tcp", cliA6, 7001, false),
			in("tcp", cliA, 7001, true), // ingress is not isolated: its replies go out
		},
	}} {
		t.Run(s.name, s.run)
	}
}

func TestRepliesOfAllowedFlowsPass(t *testing.T) {
	for _, s := range []scenario{{
		name:    "ingress allowed, egress deny all",
		ingress: allow(allowFrom("10.1.0.2/32", "fd01::2/128")),
		egress:  denyAll,
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, true), in("udp", cliA, 7001, true), in("tcp", cliA6, 7002, true),
			in("tcp", cliB, 7001, false), out("tcp", cliA, 7001, false), out("udp", cliA, 7001, false),
		},
	}, {
		name:    "egress allowed, ingress deny all",
		ingress: denyAll,
		egress:  allow(allowFrom("10.1.0.2/32", "fd01::2/128")),
		probes: []func(*topology) probe{
			out("tcp", cliA, 7001, true), out("udp", cliA, 7001, true), out("udp", cliA6, 7002, true),
			out("tcp", cliB, 7001, false), in("tcp", cliA, 7001, false), in("udp", cliA, 7001, false),
		},
	}} {
		t.Run(s.name, s.run)
	}
}

func TestIPv6AndDualStack(t *testing.T) {
	for _, s := range []scenario{{
		// Neighbour discovery must pass both isolated directions for this flow to work.
		name:    "an allowed IPv6 flow works under deny all",
		ingress: allow(compile.Allow{Addrs: prefixes("fd01::2/128"), Ports: []compile.PortRange{ports(spec.TCP, 7001, 0)}}),
		egress:  denyAll,
		probes: []func(*topology) probe{
			in("tcp", cliA6, 7001, true), in("udp", cliA6, 7001, false), in("tcp", cliB6, 7001, false),
			in("tcp", cliA, 7001, false),
		},
	}, {
		name:    "dual stack",
		ingress: allow(allowFrom("fd01::2/128", "10.1.0.2/32", "fd01::100/120")),
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, true), in("tcp", cliA6, 7001, true), in("udp", cliA6, 7003, true),
			in("tcp", cliB, 7001, false), in("tcp", cliB6, 7001, false), in("udp", cliB6, 7001, false),
		},
	}, {
		name:   "egress dual stack by prefix",
		egress: allow(allowFrom("fd01::/126", "10.1.0.3/32")),
		probes: []func(*topology) probe{
			out("tcp", cliA6, 7001, true), out("udp", cliB6, 7001, true), out("tcp", cliB, 7001, true),
			out("tcp", cliA, 7001, false), out("udp", cliA, 7001, false),
		},
	}} {
		t.Run(s.name, s.run)
	}
}

func TestDHCPPassesDenyAll(t *testing.T) {
	tp := newTopology(t)
	rs := []compile.Ruleset{{IfName: "net1", Ingress: denyAll, Egress: denyAll}}
	if err := Program(tp.srv.Path(), rs, Options{}); err != nil {
		t.Fatalf("Program: %v", err)
	}
	check(t,
		// server to client: in 67 -> 68, in 547 -> 546
		probe{From: tp.cli, Proto: "udp", Src: cliA, SrcPort: 67, Dst: to(srv1, 68), Want: true},
		probe{From: tp.cli, Proto: "udp", Src: cliA6, SrcPort: 547, Dst: to(srv16, 546), Want: true},
		probe{From: tp.cli, Proto: "udp", Src: cliB, SrcPort: 66, Dst: to(srv1, 68), Want: false},
		probe{From: tp.cli, Proto: "tcp", Src: cliA, SrcPort: 67, Dst: to(srv1, 68), Want: false},
		// client to server: out 68 -> 67, out 546 -> 547
		probe{From: tp.srv, Proto: "udp", Src: srv1b, SrcPort: 68, Dst: to(cliB, 67), Want: true},
		probe{From: tp.srv, Proto: "udp", Src: srv16b, SrcPort: 546, Dst: to(cliB6, 547), Want: true},
		probe{From: tp.srv, Proto: "udp", Src: srv1b, SrcPort: 69, Dst: to(cliB, 67), Want: false},
	)
}

func TestEchoFollowsOptions(t *testing.T) {
	for _, echo := range []bool{false, true} {
		s := scenario{
			ingress: denyAll, egress: denyAll, opts: Options{AcceptICMPEcho: echo},
			probes: []func(*topology) probe{
				in("ping", cliA, 0, echo), in("ping", cliA6, 0, echo),
				out("ping", cliB, 0, echo), out("ping", cliB6, 0, echo),
				in("tcp", cliA, 7001, false),
			},
		}
		t.Run(map[bool]string{false: "echo dropped", true: "echo accepted"}[echo], s.run)
	}
}
