package compile

import (
	"net/netip"
	"slices"

	"github.com/multinet/multinet/internal/policy/spec"
)

// MayPeer reports whether a change of pod (its labels, addresses or named ports) can change
// the rules of the pods p selects: a pod-selecting peer of one of p's rules (of a direction
// p isolates) selects pod, a pod of a namespace labelled nsLabels; or pod has a named port
// that an egress rule of p resolves per destination (a rule with no peers, or with an
// ipBlock its address on one of p's networks falls in). Call it with both the old and the
// new pod of a change. Changes of the pods p selects themselves (whose own named ports
// ingress rules resolve against) are Selects' business.
func MayPeer(p *spec.Policy, pod *Pod, nsLabels map[string]string) bool {
	for _, w := range []way{ingress, egress} {
		on, rules := directionOf(p, w)
		if !on {
			continue
		}
		for i := range rules {
			if rulePeersPod(p, &rules[i], w, pod, nsLabels) {
				return true
			}
		}
	}
	return false
}

// rulePeersPod reports whether pod's changes can change what rule allows.
func rulePeersPod(p *spec.Policy, rule *spec.Rule, w way, pod *Pod, nsLabels map[string]string) bool {
	named := w == egress && hasNamedPort(rule, pod)
	if len(rule.Peers) == 0 {
		return named && hasAddressIn(p, pod, nil)
	}
	for i := range rule.Peers {
		peer := &rule.Peers[i]
		if peer.Block != nil {
			if named && hasAddressIn(p, pod, peer.Block) {
				return true
			}
			continue
		}
		if peerSelects(p, peer, pod, nsLabels) {
			return true
		}
	}
	return false
}

// peerSelects reports whether a pod-selecting peer of p selects pod, of a namespace
// labelled nsLabels.
func peerSelects(p *spec.Policy, peer *spec.Peer, pod *Pod, nsLabels map[string]string) bool {
	if peer.NamespaceSelector == nil {
		return pod.Namespace == p.Namespace && matches(peer.PodSelector, pod.Labels)
	}
	return matches(peer.NamespaceSelector, nsLabels) && matches(peer.PodSelector, pod.Labels)
}

// hasNamedPort reports whether pod has a port that one of rule's named ports names.
func hasNamedPort(rule *spec.Rule, pod *Pod) bool {
	for _, port := range rule.Ports {
		if port.Name != "" && len(resolveNamed(pod, port)) > 0 {
			return true
		}
	}
	return false
}

// hasAddressIn reports whether pod has an address on one of p's networks (in block, if set).
func hasAddressIn(p *spec.Policy, pod *Pod, block *spec.Block) bool {
	for _, network := range p.Networks {
		if slices.ContainsFunc(pod.Addresses[network], func(a netip.Addr) bool {
			return block == nil || inBlock(block, a)
		}) {
			return true
		}
	}
	return false
}

// UsesNamespace reports whether a label change of namespace ns, from old to cur, can change
// the rules of the pods p selects: a namespaceSelector of one of p's peers (of a direction p
// isolates) matches one and not the other. A nil map is a namespace that does not exist
// (before its creation, after its deletion), which no selector matches; an existing
// namespace without labels is an empty map. Peers select namespaces by their labels alone:
// ns only names the namespace.
func UsesNamespace(p *spec.Policy, ns string, old, cur map[string]string) bool {
	for _, w := range []way{ingress, egress} {
		on, rules := directionOf(p, w)
		if !on {
			continue
		}
		for _, rule := range rules {
			for _, peer := range rule.Peers {
				if peer.NamespaceSelector == nil {
					continue
				}
				if nsMatches(peer, old) != nsMatches(peer, cur) {
					return true
				}
			}
		}
	}
	return false
}

// nsMatches reports whether peer's namespaceSelector matches a namespace labelled nsLabels
// (nil: no such namespace).
func nsMatches(peer spec.Peer, nsLabels map[string]string) bool {
	return nsLabels != nil && matches(peer.NamespaceSelector, nsLabels)
}
