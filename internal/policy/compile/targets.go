package compile

import (
	"net/netip"

	"github.com/multinet/multinet/internal/policy/spec"
)

// target is one address of a pod on a network: a destination that named ports resolve for.
type target struct {
	pod  *Pod
	addr netip.Addr
}

// egressTargets are the destinations of rule on network, pod by pod: the addresses on
// network of the pods its peers select, of the known pods whose address falls in one of its
// ipBlocks, or of every known pod when it has no peers.
func (x *Index) egressTargets(p *spec.Policy, rule *spec.Rule, network string) []target {
	var out []target
	if len(rule.Peers) == 0 {
		return appendTargets(out, x.allPods(), network, nil)
	}
	for i := range rule.Peers {
		peer := &rule.Peers[i]
		if peer.Block != nil {
			out = appendTargets(out, x.allPods(), network, peer.Block)
			continue
		}
		out = appendTargets(out, x.podsOf(p, peer), network, nil)
	}
	return out
}

// appendTargets appends the addresses of pods on network (those in block, if set).
func appendTargets(out []target, pods []*Pod, network string, block *spec.Block) []target {
	for _, pod := range pods {
		for _, a := range pod.Addresses[network] {
			if block == nil || inBlock(block, a) {
				out = append(out, target{pod: pod, addr: a})
			}
		}
	}
	return out
}

// inBlock reports whether a is in b: in its CIDR and in none of its excepts.
func inBlock(b *spec.Block, a netip.Addr) bool {
	a = a.Unmap()
	if !b.CIDR.Contains(a) {
		return false
	}
	for _, e := range b.Except {
		if e.Contains(a) {
			return false
		}
	}
	return true
}

// single is the prefix of address a alone.
func single(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}
