package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/spec"
)

// policies are the MultiNetworkPolicies of a namespace (or of all), each parsed with
// multinetd's parser. served is false when the API server serves neither version of the
// CRD: then there are none and nothing is enforced.
type policies struct {
	served  bool
	version string
	list    []namedPolicy
}

// namedPolicy is one MultiNetworkPolicy: parsed, or the parser's error.
type namedPolicy struct {
	key    string // namespace/name
	policy *spec.Policy
	err    error
}

// listPolicies lists the MultiNetworkPolicies of ns ("" for all) at v1beta2 where served,
// else v1beta1, and parses each.
func listPolicies(ctx context.Context, client dynamic.Interface, ns string) (*policies, error) {
	for _, v := range []string{spec.V1beta2, spec.V1beta1} {
		list, err := client.Resource(spec.GroupVersionResource(v)).Namespace(ns).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %s %s in namespace %q: %w", spec.Resource, v, ns, err)
		}
		ps := &policies{served: true, version: v}
		for i := range list.Items {
			u := &list.Items[i]
			np := namedPolicy{key: u.GetNamespace() + "/" + u.GetName()}
			mnp := &spec.MultiNetworkPolicy{}
			if np.err = runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, mnp); np.err == nil {
				np.policy, np.err = spec.Parse(mnp)
			}
			ps.list = append(ps.list, np)
		}
		slices.SortFunc(ps.list, func(a, b namedPolicy) int { return strings.Compare(a.key, b.key) })
		return ps, nil
	}
	return &policies{}, nil
}

// selecting are the parsed policies that select pod, whatever the networks.
func (ps *policies) selecting(pod *compile.Pod) []*spec.Policy {
	var out []*spec.Policy
	for _, np := range ps.list {
		if np.policy != nil && compile.Selects(np.policy, pod) {
			out = append(out, np.policy)
		}
	}
	return out
}

// forNetwork are the keys of those of selecting that apply to network ("namespace/name").
func forNetwork(selecting []*spec.Policy, network string) []string {
	var out []string
	for _, p := range selecting {
		if slices.Contains(p.Networks, network) {
			out = append(out, p.Namespace+"/"+p.Name)
		}
	}
	return out
}

// policyPod is what the policy engine knows of pod: labels, addresses by network (from
// network-status) and named ports.
func policyPod(pod *corev1.Pod) *compile.Pod { return compile.PodOf(pod) }

// withPolicies sets, on each interface of each view, the policies that select it. It lists
// the policies once: of ns, or of every namespace for "".
func withPolicies(ctx context.Context, c *clients, ns string, pods []corev1.Pod, views []*PodNetworks) error {
	if len(pods) == 0 {
		return nil
	}
	if len(pods) == 1 {
		ns = pods[0].Namespace
	}
	ps, err := listPolicies(ctx, c.dyn, ns)
	if err != nil || !ps.served {
		return err
	}
	for i := range pods {
		selecting := ps.selecting(policyPod(&pods[i]))
		for j := range views[i].Interfaces {
			iface := &views[i].Interfaces[j]
			iface.Policies = forNetwork(selecting, iface.Network)
		}
	}
	return nil
}
