package spec

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzParse decodes a MultiNetworkPolicy from JSON and parses it: Parse never panics, a
// refusal is an *Error whose every fault has a path and a text, the same input gives the same
// answer, and what it accepts keeps the Policy's invariants.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{}`, `null`, `{"spec":{"podSelector":{}}}`,
		`{"metadata":{"namespace":"a","annotations":{"k8s.v1.cni.cncf.io/policy-for":"x, b/y ,x"}},"spec":{"podSelector":{}}}`,
		`{"metadata":{"annotations":{"k8s.v1.cni.cncf.io/policy-for":"a/b/c,,"}}}`,
		`{"spec":{"podSelector":{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"t","operator":"In","values":["a"]}]},` +
			`"policyTypes":["Ingress","Egress"],"ingress":[{"from":[{"podSelector":{}},{"namespaceSelector":{"matchLabels":{"a":"b"}}},` +
			`{"ipBlock":{"cidr":"10.1.2.3/16","except":["10.1.7.0/24"]}}],"ports":[{"port":80},{"port":"http","protocol":"UDP"},` +
			`{"port":1000,"endPort":2000,"protocol":"SCTP"}]}],"egress":[{"to":[{"ipBlock":{"cidr":"fd00::/8","except":["fd00::/16"]}}]}]}}`,
		`{"spec":{"egress":[{"ports":[{"endPort":5}]}],"ingress":[{"from":[{}]}]}}`,
		`{"spec":{"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8","except":["fd00::/8","10.0.0.0/8","::ffff:10.0.0.0/104"]},"podSelector":{}}]}]}}`,
		`{"spec":{"ingress":[{"ports":[{"port":0},{"port":65536,"endPort":3},{"port":"80"},{"protocol":"ICMP"}]}],"policyTypes":["Ingress","Ingress","X"]}}`,
		`{"spec":{"podSelector":{"matchExpressions":[{"key":"a","operator":"Exists","values":["x"]},{"key":"","operator":"Gt"}]}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p MultiNetworkPolicy
		if json.Unmarshal(data, &p) != nil {
			return
		}
		pol, err := Parse(&p)
		_, again := Parse(&p)
		if (err == nil) != (again == nil) || err != nil && err.Error() != again.Error() {
			t.Fatalf("two parses of %s differ: %v, then %v", data, err, again)
		}
		if err != nil {
			checkRefusal(t, err)
			return
		}
		checkPolicy(t, pol)
	})
}

func checkRefusal(t *testing.T, err error) {
	var pe *Error
	if !errors.As(err, &pe) || len(pe.Faults) == 0 {
		t.Fatalf("refusal %v is not an *Error with faults", err)
	}
	for _, f := range pe.Faults {
		if f.Field == "" || f.Detail == "" || f.Type == "" {
			t.Fatalf("fault %+v lacks its path, type or text", f)
		}
	}
}

// checkPolicy checks what the rest of multinet relies on in a parsed Policy.
func checkPolicy(t *testing.T, pol *Policy) {
	if !slices.IsSorted(pol.Networks) || len(slices.Compact(slices.Clone(pol.Networks))) != len(pol.Networks) {
		t.Fatalf("networks %q not sorted and unique", pol.Networks)
	}
	for _, n := range pol.Networks {
		if ns, name, ok := strings.Cut(n, "/"); !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			t.Fatalf("network %q is not namespace/name", n)
		}
	}
	if pol.PodSelector == nil {
		t.Fatal("nil podSelector")
	}
	if !pol.Ingress && len(pol.IngressRules) > 0 || !pol.Egress && len(pol.EgressRules) > 0 {
		t.Fatalf("rules of a direction not isolated: ingress %v %d, egress %v %d", pol.Ingress, len(pol.IngressRules), pol.Egress, len(pol.EgressRules))
	}
	for _, r := range slices.Concat(pol.IngressRules, pol.EgressRules) {
		for _, p := range r.Peers {
			checkPeer(t, p)
		}
		for _, p := range r.Ports {
			checkPort(t, p)
		}
	}
}

func checkPeer(t *testing.T, p Peer) {
	if p.Block == nil {
		if p.PodSelector == nil && p.NamespaceSelector == nil {
			t.Fatal("a peer with neither block nor selector")
		}
		return
	}
	b := p.Block
	if p.PodSelector != nil || p.NamespaceSelector != nil {
		t.Fatalf("block %s with selectors", b.CIDR)
	}
	if !b.CIDR.IsValid() || b.CIDR != b.CIDR.Masked() {
		t.Fatalf("cidr %s not a masked prefix", b.CIDR)
	}
	for _, e := range b.Except {
		if e != e.Masked() || e.Addr().Is4() != b.CIDR.Addr().Is4() || e.Bits() <= b.CIDR.Bits() || !b.CIDR.Contains(e.Addr()) {
			t.Fatalf("except %s not a masked prefix strictly inside %s", e, b.CIDR)
		}
	}
}

func checkPort(t *testing.T, p Port) {
	if !slices.Contains(protocols, p.Protocol) {
		t.Fatalf("protocol %q", p.Protocol)
	}
	switch {
	case p.Name != "" && (p.Number != 0 || p.End != 0):
		t.Fatalf("named port %q with numbers %d-%d", p.Name, p.Number, p.End)
	case p.End != 0 && (p.Number == 0 || p.End < p.Number):
		t.Fatalf("range %d-%d", p.Number, p.End)
	}
}
