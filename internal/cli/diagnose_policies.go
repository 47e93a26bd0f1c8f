package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/spec"
)

// maxPeersNamed bounds the peer pods a warning names.
const maxPeersNamed = 5

// checkPolicies is the Policies section of diagnose: for each secondary interface of pod,
// the MultiNetworkPolicies that select it and the rules they compile to, then what looks
// wrong with them. Its findings are warnings, never the cause: a pod is attached as
// annotated whatever the policies say.
func checkPolicies(ctx context.Context, c *clients, pod *corev1.Pod) *diag {
	d := &diag{}
	ps, err := listPolicies(ctx, c.dyn, pod.Namespace)
	switch {
	case err != nil:
		d.note("%v", err)
		return d
	case !ps.served:
		d.note("%s is not served (no CRD): no policy applies", spec.Kind)
		return d
	}
	d.note("MultiNetworkPolicies: %d in namespace %s (%s)", len(ps.list), pod.Namespace, ps.version)
	me := policyPod(pod)
	ifaces := podInterfaces(pod)
	selecting := ps.selecting(me)
	view := readView(ctx, c, d, pod.Namespace, selecting)
	rules := compile.Rules(me, ifaces, selecting, view)
	for _, iface := range ifaces {
		d.note("%s", describeInterface(iface, selecting, rules))
	}
	if len(ifaces) == 0 {
		d.note("no secondary interface in network-status")
	}
	for _, np := range ps.list {
		if np.err != nil {
			d.warn("policy %s does not parse; multinetd enforces nothing of it: %v", np.key, np.err)
		}
	}
	checkPolicyNetworks(ctx, c, d, selecting, ifaces)
	checkPeerAddresses(d, selecting, ifaces, view)
	return d
}

// podInterfaces are the secondary interfaces of pod's network-status.
func podInterfaces(pod *corev1.Pod) []compile.Interface {
	var out []compile.Interface
	for _, s := range networkStatus(pod) {
		if isSecondary(s) {
			out = append(out, compile.Interface{IfName: s.Interface, Network: s.Name})
		}
	}
	return out
}

// describeInterface says which policies select iface and what they isolate, e.g.
// `net1 t/blue: t/a, t/b; ingress isolated (2 allow entries), egress not isolated`.
func describeInterface(iface compile.Interface, selecting []*spec.Policy, rules []compile.Ruleset) string {
	head := iface.IfName + " " + iface.Network + ": "
	keys := forNetwork(selecting, iface.Network)
	if len(keys) == 0 {
		return head + "no policy selects it; all its traffic passes"
	}
	var rs compile.Ruleset
	for _, r := range rules {
		if r.IfName == iface.IfName {
			rs = r
		}
	}
	return head + strings.Join(keys, ", ") + "; ingress " + describeDirection(rs.Ingress) + ", egress " + describeDirection(rs.Egress)
}

func describeDirection(d *compile.Direction) string {
	switch {
	case d == nil:
		return "not isolated"
	case len(d.Allow) == 0:
		return "isolated (no allow entry: all denied)"
	}
	if len(d.Allow) == 1 {
		return "isolated (1 allow entry)"
	}
	return fmt.Sprintf("isolated (%d allow entries)", len(d.Allow))
}

// checkPolicyNetworks warns of a policy that selects the pod but none of its interfaces, and
// of a policy-for that names a NetworkAttachmentDefinition that does not exist.
func checkPolicyNetworks(ctx context.Context, c *clients, d *diag, selecting []*spec.Policy, ifaces []compile.Interface) {
	have := make([]string, 0, len(ifaces))
	for _, i := range ifaces {
		have = append(have, i.Network)
	}
	exists := map[string]bool{}
	for _, p := range selecting {
		key := p.Namespace + "/" + p.Name
		if len(p.Networks) == 0 {
			d.warn("policy %s selects the pod but has no %s: it applies to no network", key, spec.PolicyForAnnotation)
			continue
		}
		for _, n := range p.Networks {
			if _, done := exists[n]; !done {
				exists[n] = nadExists(ctx, c, d, n)
			}
			if !exists[n] {
				d.warn("policy %s: policy-for names %s: no such NetworkAttachmentDefinition", key, n)
			}
		}
		if !slices.ContainsFunc(p.Networks, func(n string) bool { return slices.Contains(have, n) }) {
			d.warn("policy %s selects the pod but none of its interfaces: policy-for names %s, the pod has %s",
				key, strings.Join(p.Networks, ", "), list(have))
		}
	}
}

// nadExists tells whether NAD network ("namespace/name") exists; when it cannot tell, it
// notes why and says yes.
func nadExists(ctx context.Context, c *clients, d *diag, network string) bool {
	ns, name, _ := strings.Cut(network, "/")
	_, err := c.nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case err == nil:
		return true
	case apierrors.IsNotFound(err):
		return false
	}
	d.note("network %s: %v", network, err)
	return true
}

// checkPeerAddresses warns of peer pods that a policy applying to an interface selects but
// that have no address on the interface's network: no packet of theirs can match.
func checkPeerAddresses(d *diag, selecting []*spec.Policy, ifaces []compile.Interface, view compile.View) {
	for _, iface := range ifaces {
		for _, p := range selecting {
			if !slices.Contains(p.Networks, iface.Network) {
				continue
			}
			var none []string
			for _, pod := range peerPods(p, view) {
				if len(pod.Addresses[iface.Network]) == 0 && !slices.Contains(none, pod.Namespace+"/"+pod.Name) {
					none = append(none, pod.Namespace+"/"+pod.Name)
				}
			}
			if len(none) > 0 {
				d.warn("policy %s: %d peer pod(s) it selects have no address on %s, so never match: %s",
					p.Namespace+"/"+p.Name, len(none), iface.Network, clipNames(none))
			}
		}
	}
}

// peerPods are the pods that the pod-selecting peers of p's isolated directions select.
func peerPods(p *spec.Policy, view compile.View) []*compile.Pod {
	var out []*compile.Pod
	for _, peer := range policyPeers(p) {
		nss := []string{p.Namespace}
		if peer.NamespaceSelector != nil {
			nss = nil
			for _, ns := range view.Namespaces() {
				if l, ok := view.NamespaceLabels(ns); ok && peer.NamespaceSelector.Matches(labels.Set(l)) {
					nss = append(nss, ns)
				}
			}
		}
		for _, ns := range nss {
			for _, pod := range view.Pods(ns) {
				if peer.PodSelector == nil || peer.PodSelector.Matches(labels.Set(pod.Labels)) {
					out = append(out, pod)
				}
			}
		}
	}
	return out
}

// policyPeers are the pod-selecting peers of the rules of the directions p isolates (Parse
// keeps no rule of another direction).
func policyPeers(p *spec.Policy) []spec.Peer {
	var out []spec.Peer
	for _, rules := range [][]spec.Rule{p.IngressRules, p.EgressRules} {
		for _, r := range rules {
			for _, peer := range r.Peers {
				if peer.Block == nil {
					out = append(out, peer)
				}
			}
		}
	}
	return out
}

func clipNames(names []string) string {
	if len(names) <= maxPeersNamed {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:maxPeersNamed], ", "), len(names)-maxPeersNamed)
}

// apiView is the cluster as compile sees it, read from the API: namespaces' labels, and the
// pods of the namespaces that the policies' peers can select only.
type apiView struct {
	labels map[string]map[string]string
	pods   map[string][]*compile.Pod
}

func (v *apiView) NamespaceLabels(name string) (map[string]string, bool) {
	l, ok := v.labels[name]
	return l, ok
}

func (v *apiView) Namespaces() []string { return slices.Sorted(maps.Keys(v.labels)) }

func (v *apiView) Pods(namespace string) []*compile.Pod { return v.pods[namespace] }

// readView lists the namespaces, then the pods of those that selecting's peers may select
// (of every namespace when an egress named port resolves against any destination).
func readView(ctx context.Context, c *clients, d *diag, podNS string, selecting []*spec.Policy) *apiView {
	v := &apiView{labels: map[string]map[string]string{}, pods: map[string][]*compile.Pod{}}
	if len(selecting) == 0 {
		return v
	}
	nss, err := c.core.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		d.note("namespaces: %v; peers are looked for in namespace %s only", err, podNS)
		v.labels[podNS] = map[string]string{}
	}
	if nss != nil {
		for _, ns := range nss.Items {
			v.labels[ns.Name] = ns.Labels
			if v.labels[ns.Name] == nil {
				v.labels[ns.Name] = map[string]string{}
			}
		}
	}
	for _, ns := range peerNamespaces(v, selecting) {
		pods, err := c.core.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			d.note("pods of namespace %s: %v; its pods are left out of the rules", ns, err)
			continue
		}
		for i := range pods.Items {
			if p := &pods.Items[i]; p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				v.pods[ns] = append(v.pods[ns], policyPod(p))
			}
		}
	}
	return v
}

// peerNamespaces are the namespaces of v whose pods the policies' rules may resolve.
func peerNamespaces(v *apiView, selecting []*spec.Policy) []string {
	want := map[string]bool{}
	for _, p := range selecting {
		if len(p.Networks) == 0 {
			continue
		}
		if resolvesAnyPod(p) {
			return v.Namespaces()
		}
		for _, peer := range policyPeers(p) {
			for _, ns := range v.Namespaces() {
				l := v.labels[ns]
				if (peer.NamespaceSelector == nil && ns == p.Namespace) ||
					(peer.NamespaceSelector != nil && peer.NamespaceSelector.Matches(labels.Set(l))) {
					want[ns] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(want))
}

// resolvesAnyPod tells whether an egress rule of p has a named port and a peer that is not
// a pod selector (none, or an ipBlock): its port resolves against every pod.
func resolvesAnyPod(p *spec.Policy) bool {
	for _, r := range p.EgressRules {
		named := slices.ContainsFunc(r.Ports, func(port spec.Port) bool { return port.Name != "" })
		if named && (len(r.Peers) == 0 || slices.ContainsFunc(r.Peers, func(peer spec.Peer) bool { return peer.Block != nil })) {
			return true
		}
	}
	return false
}
