package compile

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/multinet/multinet/internal/policy/spec"
)

// View is the cluster as multinetd sees it.
type View interface {
	// NamespaceLabels are the labels of namespace name; false: an unknown namespace, which
	// no namespaceSelector matches.
	NamespaceLabels(name string) (map[string]string, bool)
	// Namespaces are the known namespaces.
	Namespaces() []string
	// Pods are the known pods of namespace.
	Pods(namespace string) []*Pod
}

// Rules is the rules of pod's interfaces: a Ruleset for each interface of ifaces, in their
// order, that at least one policy applies to (a policy of the pod's namespace whose
// podSelector matches the pod and whose Networks list the interface's network). Other
// interfaces get none: all their traffic passes.
//
// The semantics are NetworkPolicy's, per network: a direction is isolated when a policy that
// applies isolates it, and then allows the union of those policies' rules; peer pods stand
// for their addresses on the interface's network only. The result is canonical (policies
// sorted, allows merged and sorted, prefixes masked, merged and sorted), so equal inputs give
// reflect.DeepEqual results. With an Index for view, what does not depend on pod is worked
// out once for all the calls that share it.
func Rules(pod *Pod, ifaces []Interface, policies []*spec.Policy, view View) []Ruleset {
	selecting := selectingPolicies(pod, policies)
	if len(selecting) == 0 {
		return nil
	}
	x, shared := view.(*Index)
	if shared {
		x.mu.Lock()
		defer x.mu.Unlock()
	} else {
		x = NewIndex(view)
	}
	var out []Ruleset
	for _, iface := range ifaces {
		var applying []*spec.Policy
		for _, p := range selecting {
			if slices.Contains(p.Networks, iface.Network) {
				applying = append(applying, p)
			}
		}
		if len(applying) == 0 {
			continue
		}
		out = append(out, x.ruleset(pod, iface, applying))
	}
	return out
}

// Selects reports whether p applies to pod (same namespace, podSelector matches), whatever
// the networks.
func Selects(p *spec.Policy, pod *Pod) bool {
	return p.Namespace == pod.Namespace && matches(p.PodSelector, pod.Labels)
}

// Equal reports whether two results of Rules are the same.
func Equal(a, b []Ruleset) bool {
	return slices.EqualFunc(a, b, equalRuleset)
}

// selectingPolicies are the policies that select pod, sorted by namespace/name.
func selectingPolicies(pod *Pod, policies []*spec.Policy) []*spec.Policy {
	var out []*spec.Policy
	for _, p := range policies {
		if Selects(p, pod) {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b *spec.Policy) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// ruleset is the rules of one interface, given the policies that apply to it (sorted).
func (x *Index) ruleset(pod *Pod, iface Interface, applying []*spec.Policy) Ruleset {
	rs := Ruleset{IfName: iface.IfName, Network: iface.Network}
	for _, p := range applying {
		name := p.Namespace + "/" + p.Name
		if len(rs.Policies) == 0 || rs.Policies[len(rs.Policies)-1] != name {
			rs.Policies = append(rs.Policies, name)
		}
	}
	rs.Ingress = x.cachedDirection(pod, iface, applying, ingress)
	rs.Egress = x.cachedDirection(pod, iface, applying, egress)
	return rs
}

// way is a direction of traffic.
type way int

const (
	ingress way = iota
	egress
)

// direction is one direction of an interface: nil when no applying policy isolates it,
// else the union of the rules of those that do.
func (x *Index) direction(pod *Pod, iface Interface, applying []*spec.Policy, w way) *Direction {
	isolated := false
	var allows []Allow
	for _, p := range applying {
		on, rules := directionOf(p, w)
		if !on {
			continue
		}
		isolated = true
		for i := range rules {
			allows = append(allows, x.ruleAllows(p, &rules[i], pod, iface.Network, w)...)
		}
	}
	if !isolated {
		return nil
	}
	return &Direction{Allow: normalizeAllows(allows)}
}

// directionOf is whether p isolates direction w, and its rules for it.
func directionOf(p *spec.Policy, w way) (bool, []spec.Rule) {
	if w == ingress {
		return p.Ingress, p.IngressRules
	}
	return p.Egress, p.EgressRules
}

// matches reports whether sel selects set; a nil selector selects everything.
func matches(sel labels.Selector, set map[string]string) bool {
	return sel == nil || sel.Matches(labels.Set(set))
}

func equalRuleset(a, b Ruleset) bool {
	return a.IfName == b.IfName && a.Network == b.Network &&
		slices.Equal(a.Policies, b.Policies) &&
		equalDirection(a.Ingress, b.Ingress) && equalDirection(a.Egress, b.Egress)
}

func equalDirection(a, b *Direction) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.EqualFunc(a.Allow, b.Allow, equalAllow)
}

func equalAllow(a, b Allow) bool {
	return a.Any == b.Any && slices.Equal(a.Addrs, b.Addrs) && slices.Equal(a.Ports, b.Ports)
}
