package compile

import (
	"net/netip"

	"github.com/multinet/multinet/internal/policy/spec"
)

// ruleAllows are the allows of one rule of p for pod's interface on network, direction w.
// Numeric ports (and on ingress the named ports, resolved against pod's own ports) go into
// one allow with the rule's peer addresses; on egress, named ports resolve per destination
// pod into allows of their own.
func (x *Index) ruleAllows(p *spec.Policy, rule *spec.Rule, pod *Pod, network string, w way) []Allow {
	numeric, named := splitPorts(rule.Ports, pod, w)
	var out []Allow
	if len(rule.Ports) == 0 || len(numeric) > 0 {
		ra := x.ruleAddrs(p, rule, network)
		if ra.any || len(ra.addrs) > 0 {
			out = append(out, Allow{Any: ra.any, Addrs: ra.addrs, Ports: numeric})
		}
	}
	if len(named) > 0 {
		out = append(out, x.namedAllows(p, rule, network, named)...)
	}
	return out
}

// splitPorts splits ports into ranges and the named ports left to resolve per destination.
// On ingress a named port resolves against pod's own ports; one it lacks matches nothing.
func splitPorts(ports []spec.Port, pod *Pod, w way) ([]PortRange, []spec.Port) {
	var numeric []PortRange
	var named []spec.Port
	for _, port := range ports {
		switch {
		case port.Name == "":
			numeric = append(numeric, portRange(port))
		case w == ingress:
			numeric = append(numeric, resolveNamed(pod, port)...)
		default:
			named = append(named, port)
		}
	}
	return numeric, named
}

// portRange is the range of a numeric port.
func portRange(port spec.Port) PortRange {
	last := port.End
	if last < port.Number {
		last = port.Number
	}
	return PortRange{Protocol: port.Protocol, First: port.Number, Last: last}
}

// resolveNamed are the ports of pod's containers named like port, with its protocol.
func resolveNamed(pod *Pod, port spec.Port) []PortRange {
	var out []PortRange
	for _, np := range pod.Ports {
		if np.Name == port.Name && np.Protocol == port.Protocol && np.Port != 0 {
			out = append(out, PortRange{Protocol: np.Protocol, First: np.Port, Last: np.Port})
		}
	}
	return out
}

// namedAllows are the allows of the named egress ports of rule on network: to each
// destination, the ports of its pod that the names resolve to. Destinations whose pod has
// none of them get nothing.
func (x *Index) namedAllows(p *spec.Policy, rule *spec.Rule, network string, named []spec.Port) []Allow {
	key := ruleOn{rule, network}
	if allows, ok := x.named[key]; ok {
		return allows
	}
	targets := x.egressTargets(p, rule, network)
	byPort := map[PortRange][]netip.Prefix{}
	var order []PortRange
	for _, t := range targets {
		for _, port := range named {
			for _, pr := range resolveNamed(t.pod, port) {
				if _, ok := byPort[pr]; !ok {
					order = append(order, pr)
				}
				byPort[pr] = append(byPort[pr], single(t.addr))
			}
		}
	}
	out := make([]Allow, 0, len(order))
	for _, pr := range order {
		out = append(out, Allow{Addrs: normalizePrefixes(byPort[pr]), Ports: []PortRange{pr}})
	}
	x.named[key] = out
	return out
}
