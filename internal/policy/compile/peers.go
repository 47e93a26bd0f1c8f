package compile

import (
	"net/netip"

	"github.com/multinet/multinet/internal/policy/spec"
)

// resolver resolves the peers of rules against a View, once per peer for all the
// interfaces of one call of Rules.
type resolver struct {
	view     View
	peerPods map[*spec.Peer][]*Pod
	all      []*Pod
	allDone  bool
}

func newResolver(view View) *resolver {
	return &resolver{view: view, peerPods: map[*spec.Peer][]*Pod{}}
}

// podsOf are the pods that peer (a pod-selecting peer of a rule of p) selects: those of
// p's namespace, or of the known namespaces its namespaceSelector matches, that its
// podSelector matches.
func (r *resolver) podsOf(p *spec.Policy, peer *spec.Peer) []*Pod {
	if pods, ok := r.peerPods[peer]; ok {
		return pods
	}
	var pods []*Pod
	if peer.NamespaceSelector == nil {
		pods = selectPods(r.view.Pods(p.Namespace), peer, nil)
	} else {
		for _, ns := range r.view.Namespaces() {
			nsLabels, ok := r.view.NamespaceLabels(ns)
			if !ok || !matches(peer.NamespaceSelector, nsLabels) {
				continue
			}
			pods = selectPods(r.view.Pods(ns), peer, pods)
		}
	}
	r.peerPods[peer] = pods
	return pods
}

// selectPods appends to out the pods that peer's podSelector matches.
func selectPods(pods []*Pod, peer *spec.Peer, out []*Pod) []*Pod {
	if peer.PodSelector == nil {
		return append(out, pods...)
	}
	for _, pod := range pods {
		if matches(peer.PodSelector, pod.Labels) {
			out = append(out, pod)
		}
	}
	return out
}

// allPods are the pods of every known namespace.
func (r *resolver) allPods() []*Pod {
	if !r.allDone {
		for _, ns := range r.view.Namespaces() {
			r.all = append(r.all, r.view.Pods(ns)...)
		}
		r.allDone = true
	}
	return r.all
}

// peerAddrs are the addresses the peers of rule stand for on network: any (no peers), or
// the ipBlocks and the addresses the selected pods have on network.
func (r *resolver) peerAddrs(p *spec.Policy, rule *spec.Rule, network string) (bool, []netip.Prefix) {
	if len(rule.Peers) == 0 {
		return true, nil
	}
	var out []netip.Prefix
	for i := range rule.Peers {
		peer := &rule.Peers[i]
		if peer.Block != nil {
			out = append(out, subtract(peer.Block.CIDR, peer.Block.Except)...)
			continue
		}
		for _, pod := range r.podsOf(p, peer) {
			for _, a := range pod.Addresses[network] {
				out = append(out, single(a))
			}
		}
	}
	return false, out
}

// target is one address of a pod on a network: a destination that named ports resolve for.
type target struct {
	pod  *Pod
	addr netip.Addr
}

// egressTargets are the destinations of rule on network, pod by pod: the addresses on
// network of the pods its peers select, of the known pods whose address falls in one of its
// ipBlocks, or of every known pod when it has no peers.
func (r *resolver) egressTargets(p *spec.Policy, rule *spec.Rule, network string) []target {
	var out []target
	if len(rule.Peers) == 0 {
		return appendTargets(out, r.allPods(), network, nil)
	}
	for i := range rule.Peers {
		peer := &rule.Peers[i]
		if peer.Block != nil {
			out = appendTargets(out, r.allPods(), network, peer.Block)
			continue
		}
		out = appendTargets(out, r.podsOf(p, peer), network, nil)
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
