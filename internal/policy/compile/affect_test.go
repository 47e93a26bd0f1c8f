package compile

import (
	"testing"

	"github.com/multinet/multinet/internal/policy/spec"
)

func TestMayPeer(t *testing.T) {
	client := pod("app/client", "role=client", blue+"=10.1.0.11")
	opsClient := pod("ops/client", "role=client", blue+"=10.1.0.21")
	web := withPorts(pod("ops/web", "role=web", blue+"=10.1.0.80"), NamedPort{Name: "http", Protocol: spec.TCP, Port: 80})
	redWeb := withPorts(pod("ops/web", "role=web", red+"=10.1.0.80"), NamedPort{Name: "http", Protocol: spec.TCP, Port: 80})
	app, ops := map[string]string{"team": "app"}, map[string]string{"team": "ops"}
	for _, tc := range []struct {
		name   string
		policy *spec.Policy
		pod    *Pod
		ns     map[string]string
		want   bool
	}{
		{"podSelector alone, same namespace", ingressFrom(policy("p", "{}", blue), rule(peers(pods("role=client", "")))), client, app, true},
		{"podSelector alone, other namespace", ingressFrom(policy("p", "{}", blue), rule(peers(pods("role=client", "")))), opsClient, ops, false},
		{"podSelector alone, labels differ", ingressFrom(policy("p", "{}", blue), rule(peers(pods("role=db", "")))), client, app, false},
		{"namespaceSelector alone", egressTo(policy("p", "{}", blue), rule(peers(pods("", "team=ops")))), opsClient, ops, true},
		{"namespaceSelector, other namespace", egressTo(policy("p", "{}", blue), rule(peers(pods("", "team=ops")))), client, app, false},
		{"both selectors", ingressFrom(policy("p", "{}", blue), rule(peers(pods("role=client", "team=ops")))), opsClient, ops, true},
		{"both selectors, pod labels differ", ingressFrom(policy("p", "{}", blue), rule(peers(pods("role=web", "team=ops")))), opsClient, ops, false},
		{"a direction the policy does not isolate", func() *spec.Policy {
			p := ingressFrom(policy("p", "{}", blue))
			p.EgressRules = []spec.Rule{rule(peers(pods("role=client", "")))}
			return p
		}(), client, app, false},
		{"ipBlock with numeric ports", egressTo(policy("p", "{}", blue), rule(peers(block("10.0.0.0/8")), tcp(80))), web, ops, false},
		{"no peers, numeric ports", egressTo(policy("p", "{}", blue), rule(nil, tcp(80))), web, ops, false},
		{"no peers, egress named port the pod has", egressTo(policy("p", "{}", blue), rule(nil, named("http", spec.TCP))), web, ops, true},
		{"no peers, egress named port, pod not on the network", egressTo(policy("p", "{}", blue), rule(nil, named("http", spec.TCP))), redWeb, ops, false},
		{"no peers, egress named port the pod lacks", egressTo(policy("p", "{}", blue), rule(nil, named("http", spec.UDP))), web, ops, false},
		{"no peers, ingress named port", ingressFrom(policy("p", "{}", blue), rule(nil, named("http", spec.TCP))), web, ops, false},
		{"ipBlock, egress named port, pod inside", egressTo(policy("p", "{}", blue), rule(peers(block("10.1.0.0/24")), named("http", spec.TCP))), web, ops, true},
		{"ipBlock, egress named port, pod in except", egressTo(policy("p", "{}", blue), rule(peers(block("10.1.0.0/24", "10.1.0.64/26")), named("http", spec.TCP))), web, ops, false},
	} {
		if got := MayPeer(tc.policy, tc.pod, tc.ns); got != tc.want {
			t.Errorf("%s: MayPeer = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestUsesNamespace(t *testing.T) {
	byTeam := ingressFrom(policy("p", "{}", blue), rule(peers(pods("role=client", "team=ops"))))
	anyNamespace := egressTo(policy("p", "{}", blue), rule(peers(pods("", "{}"))))
	ownNamespace := ingressFrom(policy("p", "{}", blue), rule(peers(pods("role=client", ""))))
	notIsolated := policy("p", "{}", blue)
	notIsolated.IngressRules = byTeam.IngressRules
	ops, dev := map[string]string{"team": "ops"}, map[string]string{"team": "dev"}
	for _, tc := range []struct {
		name     string
		policy   *spec.Policy
		old, cur map[string]string
		want     bool
	}{
		{"starts matching", byTeam, dev, ops, true},
		{"stops matching", byTeam, ops, dev, true},
		{"still matches", byTeam, ops, map[string]string{"team": "ops", "zone": "b"}, false},
		{"never matches", byTeam, dev, map[string]string{}, false},
		{"created matching", byTeam, nil, ops, true},
		{"deleted while matching", byTeam, ops, nil, true},
		{"created not matching", byTeam, nil, dev, false},
		{"{} and a created namespace", anyNamespace, nil, map[string]string{}, true},
		{"{} and a relabelled namespace", anyNamespace, ops, dev, false},
		{"own namespace only", ownNamespace, ops, dev, false},
		{"rules of a direction not isolated", notIsolated, dev, ops, false},
	} {
		if got := UsesNamespace(tc.policy, "ops", tc.old, tc.cur); got != tc.want {
			t.Errorf("%s: UsesNamespace = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSelects(t *testing.T) {
	server := pod("app/server", "role=server,tier=web", blue+"=10.1.0.10")
	for _, tc := range []struct {
		name   string
		policy *spec.Policy
		want   bool
	}{
		{"podSelector matches", policy("p", "role=server", red), true},
		{"empty podSelector", policy("p", "{}"), true},
		{"podSelector differs", policy("p", "role=server,tier!=web", blue), false},
		{"other namespace", &spec.Policy{Namespace: "ops", Name: "p", PodSelector: sel("{}")}, false},
	} {
		if got := Selects(tc.policy, server); got != tc.want {
			t.Errorf("%s: Selects = %v, want %v", tc.name, got, tc.want)
		}
	}
}
