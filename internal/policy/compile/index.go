package compile

import (
	"net/netip"
	"sync"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/multinet/multinet/internal/policy/spec"
)

// Index is a View that remembers what Rules works out from it: the pods each peer selects,
// the addresses each rule allows on a network, the destinations of its named ports. Rules
// given an Index works them out once for all the pods of a batch (the pods an event
// affects) instead of once per pod. An Index is valid while the View it wraps does not
// change and the policies its callers pass are the same (policies are immutable): make a
// new one after every change. It is safe for concurrent use; calls of Rules that share it
// run one at a time.
type Index struct {
	view View
	mu   sync.Mutex

	peerPods map[*spec.Peer][]*Pod
	all      []*Pod
	allDone  bool
	addrs    map[ruleOn]ruleAddrs
	named    map[ruleOn][]Allow
	dirs     map[string]cachedDirection
}

// ruleOn is a rule on a network.
type ruleOn struct {
	rule    *spec.Rule
	network string
}

// ruleAddrs are the addresses a rule's peers stand for on a network: any, or addrs
// (normalized).
type ruleAddrs struct {
	any   bool
	addrs []netip.Prefix
}

// NewIndex is an Index over view.
func NewIndex(view View) *Index {
	return &Index{
		view: view, peerPods: map[*spec.Peer][]*Pod{},
		addrs: map[ruleOn]ruleAddrs{}, named: map[ruleOn][]Allow{},
		dirs: map[string]cachedDirection{},
	}
}

// NamespaceLabels implements View.
func (x *Index) NamespaceLabels(name string) (map[string]string, bool) {
	return x.view.NamespaceLabels(name)
}

// Namespaces implements View.
func (x *Index) Namespaces() []string { return x.view.Namespaces() }

// Pods implements View.
func (x *Index) Pods(namespace string) []*Pod { return x.view.Pods(namespace) }

// podsOf are the pods that peer (a pod-selecting peer of a rule of p) selects: those of
// p's namespace, or of the known namespaces its namespaceSelector matches, that its
// podSelector matches.
func (x *Index) podsOf(p *spec.Policy, peer *spec.Peer) []*Pod {
	if pods, ok := x.peerPods[peer]; ok {
		return pods
	}
	var pods []*Pod
	if peer.NamespaceSelector == nil {
		pods = x.selectPods(p.Namespace, peer.PodSelector, nil)
	} else {
		for _, ns := range x.view.Namespaces() {
			nsLabels, ok := x.view.NamespaceLabels(ns)
			if ok && matches(peer.NamespaceSelector, nsLabels) {
				pods = x.selectPods(ns, peer.PodSelector, pods)
			}
		}
	}
	x.peerPods[peer] = pods
	return pods
}

// selectPods appends to out the pods of namespace ns that sel matches (nil: all).
func (x *Index) selectPods(ns string, sel labels.Selector, out []*Pod) []*Pod {
	for _, pod := range x.view.Pods(ns) {
		if matches(sel, pod.Labels) {
			out = append(out, pod)
		}
	}
	return out
}

// allPods are the pods of every known namespace.
func (x *Index) allPods() []*Pod {
	if !x.allDone {
		for _, ns := range x.view.Namespaces() {
			x.all = append(x.all, x.view.Pods(ns)...)
		}
		x.allDone = true
	}
	return x.all
}

// ruleAddrs are the addresses the peers of rule (of p) stand for on network: any (no
// peers), or the ipBlocks and the addresses the selected pods have on network.
func (x *Index) ruleAddrs(p *spec.Policy, rule *spec.Rule, network string) ruleAddrs {
	key := ruleOn{rule, network}
	if ra, ok := x.addrs[key]; ok {
		return ra
	}
	ra := ruleAddrs{any: len(rule.Peers) == 0}
	for i := range rule.Peers {
		peer := &rule.Peers[i]
		if peer.Block != nil {
			ra.addrs = append(ra.addrs, subtract(peer.Block.CIDR, peer.Block.Except)...)
			continue
		}
		for _, pod := range x.podsOf(p, peer) {
			for _, a := range pod.Addresses[network] {
				ra.addrs = append(ra.addrs, single(a))
			}
		}
	}
	ra.addrs = normalizePrefixes(ra.addrs)
	x.addrs[key] = ra
	return ra
}
