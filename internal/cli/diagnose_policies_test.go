package cli

import (
	"net/netip"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/spec"
)

// TestPeerNamespacesBoundTheView: diagnose lists the pods of the namespaces the peers of
// the selecting policies can select, and of every namespace only for an egress named port
// that resolves against any destination.
func TestPeerNamespacesBoundTheView(t *testing.T) {
	v := &apiView{labels: map[string]map[string]string{"a": {}, "b": {"env": "prod"}, "c": {"env": "dev"}, "d": {"env": "prod"}}}
	prod := labels.SelectorFromSet(labels.Set{"env": "prod"})
	block := &spec.Block{CIDR: netip.MustParsePrefix("10.0.0.0/8")}
	pol := func(networks []string, ingress, egress []spec.Rule) *spec.Policy {
		return &spec.Policy{Namespace: "a", Name: "p", Networks: networks, PodSelector: labels.Everything(),
			Ingress: len(ingress) > 0, Egress: len(egress) > 0, IngressRules: ingress, EgressRules: egress}
	}
	blue := []string{"a/blue"}
	for _, c := range []struct {
		name string
		p    *spec.Policy
		want []string
	}{
		{"a podSelector peer: the policy's namespace", pol(blue, []spec.Rule{{Peers: []spec.Peer{{PodSelector: labels.Everything()}}}}, nil), []string{"a"}},
		{"a namespaceSelector peer: the namespaces it matches", pol(blue, []spec.Rule{{Peers: []spec.Peer{{NamespaceSelector: prod}}}}, nil), []string{"b", "d"}},
		{"ipBlock peers only: none", pol(blue, []spec.Rule{{Peers: []spec.Peer{{Block: block}}}}, nil), nil},
		{"a rule without peers: none", pol(blue, []spec.Rule{{}}, nil), nil},
		{"no policy-for: none", pol(nil, []spec.Rule{{Peers: []spec.Peer{{PodSelector: labels.Everything()}}}}, nil), nil},
		{"an egress named port to anyone: every namespace", pol(blue, nil, []spec.Rule{{Ports: []spec.Port{{Protocol: spec.TCP, Name: "http"}}}}), []string{"a", "b", "c", "d"}},
		{"an egress named port to an ipBlock: every namespace", pol(blue, nil, []spec.Rule{{Peers: []spec.Peer{{Block: block}}, Ports: []spec.Port{{Protocol: spec.TCP, Name: "http"}}}}), []string{"a", "b", "c", "d"}},
		{"an egress named port to pods: theirs", pol(blue, nil, []spec.Rule{{Peers: []spec.Peer{{NamespaceSelector: prod, PodSelector: labels.Everything()}}, Ports: []spec.Port{{Protocol: spec.TCP, Name: "http"}}}}), []string{"b", "d"}},
	} {
		if got := peerNamespaces(v, []*spec.Policy{c.p}); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// TestDescribeInterface: the line of an interface in diagnose's Policies section.
func TestDescribeInterface(t *testing.T) {
	iface := compile.Interface{IfName: "net1", Network: "a/blue"}
	p := []*spec.Policy{{Namespace: "a", Name: "x", Networks: []string{"a/blue"}}, {Namespace: "a", Name: "y", Networks: []string{"a/green"}}}
	for _, c := range []struct {
		name      string
		selecting []*spec.Policy
		rules     []compile.Ruleset
		want      string
	}{
		{"none", p[1:], nil, "net1 a/blue: no policy selects it; all its traffic passes"},
		{"ingress denied", p, []compile.Ruleset{{IfName: "net1", Ingress: &compile.Direction{}}},
			"net1 a/blue: a/x; ingress isolated (no allow entry: all denied), egress not isolated"},
		{"both", p, []compile.Ruleset{{IfName: "net0"}, {IfName: "net1", Ingress: &compile.Direction{Allow: make([]compile.Allow, 1)},
			Egress: &compile.Direction{Allow: make([]compile.Allow, 3)}}},
			"net1 a/blue: a/x; ingress isolated (1 allow entry), egress isolated (3 allow entries)"},
	} {
		if got := describeInterface(iface, c.selecting, c.rules); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
