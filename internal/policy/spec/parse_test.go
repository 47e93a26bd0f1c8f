package spec

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// policy is a MultiNetworkPolicy team-a/p with the policy-for annotation forNets (none when
// "-") and the spec written in YAML.
func policy(t *testing.T, forNets, specYAML string) *MultiNetworkPolicy {
	t.Helper()
	p := &MultiNetworkPolicy{}
	p.Namespace, p.Name = "team-a", "p"
	if forNets != "-" {
		p.Annotations = map[string]string{PolicyForAnnotation: forNets}
	}
	if err := yaml.UnmarshalStrict([]byte(specYAML), &p.Spec); err != nil {
		t.Fatalf("spec %s: %v", specYAML, err)
	}
	return p
}

// describe renders a Policy for comparison, one line.
func describe(p *Policy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "nets=%s pods=%s", strings.Join(p.Networks, ","), p.PodSelector)
	if p.Ingress {
		b.WriteString(" ingress" + describeRules(p.IngressRules))
	}
	if p.Egress {
		b.WriteString(" egress" + describeRules(p.EgressRules))
	}
	return b.String()
}

func describeRules(rules []Rule) string {
	var b strings.Builder
	for _, r := range rules {
		var peers, ports []string
		for _, p := range r.Peers {
			peers = append(peers, describePeer(p))
		}
		for _, p := range r.Ports {
			ports = append(ports, describePort(p))
		}
		fmt.Fprintf(&b, "[%s on %s]", strings.Join(peers, "|"), strings.Join(ports, ","))
	}
	return b.String()
}

func describePeer(p Peer) string {
	if p.Block != nil {
		s := p.Block.CIDR.String()
		for _, e := range p.Block.Except {
			s += " -" + e.String()
		}
		return s
	}
	pods, ns := "*", "own"
	if p.PodSelector != nil {
		pods = "{" + p.PodSelector.String() + "}"
	}
	if p.NamespaceSelector != nil {
		ns = "{" + p.NamespaceSelector.String() + "}"
	}
	return "pods " + pods + " in ns " + ns
}

func describePort(p Port) string {
	switch {
	case p.Name != "":
		return fmt.Sprintf("%s/%s", p.Protocol, p.Name)
	case p.End != 0:
		return fmt.Sprintf("%s/%d-%d", p.Protocol, p.Number, p.End)
	case p.Number != 0:
		return fmt.Sprintf("%s/%d", p.Protocol, p.Number)
	}
	return string(p.Protocol)
}

// TestParse: what an admissible policy compiles to.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, forNets, spec, want string
	}{
		{name: "deny all ingress, no annotation", forNets: "-", spec: `podSelector: {}`,
			want: "nets= pods= ingress"},
		{name: "empty annotation", forNets: " ", spec: `podSelector: {}`,
			want: "nets= pods= ingress"},
		{name: "networks resolved, sorted, deduplicated", forNets: " storage, other/fast ,team-a/storage", spec: `podSelector: {}`,
			want: "nets=other/fast,team-a/storage pods= ingress"},
		{name: "egress rules without policyTypes isolate egress too", forNets: "n",
			spec: `{podSelector: {matchLabels: {app: web}}, egress: [{}]}`,
			want: "nets=team-a/n pods=app=web ingress egress[ on ]"},
		{name: "policyTypes Egress only: ingress rules are dropped", forNets: "n",
			spec: `{podSelector: {}, policyTypes: [Egress], ingress: [{ports: [{port: 80}]}]}`,
			want: "nets=team-a/n pods= egress"},
		{name: "policyTypes both, no rules: deny all", forNets: "n",
			spec: `{podSelector: {}, policyTypes: [Ingress, Egress]}`,
			want: "nets=team-a/n pods= ingress egress"},
		{name: "peers of every kind", forNets: "n", spec: `
podSelector: {matchExpressions: [{key: tier, operator: In, values: [db, cache]}]}
ingress:
- from:
  - podSelector: {matchLabels: {app: web}}
  - namespaceSelector: {matchLabels: {team: a}}
  - podSelector: {}
    namespaceSelector: {matchExpressions: [{key: env, operator: Exists}]}
  - ipBlock: {cidr: 10.1.2.3/16, except: [10.1.7.0/24, 10.1.8.9/24]}
  - ipBlock: {cidr: "fd00::1/64", except: ["fd00::/80"]}`,
			want: "nets=team-a/n pods=tier in (cache,db) ingress[pods {app=web} in ns own|pods * in ns {team=a}|" +
				"pods {} in ns {env}|10.1.0.0/16 -10.1.7.0/24 -10.1.8.0/24|fd00::/64 -fd00::/80 on ]"},
		{name: "ports of every kind", forNets: "n", spec: `
podSelector: {}
policyTypes: [Egress]
egress:
- ports:
  - port: 53
    protocol: UDP
  - port: 80
  - {port: 8000, endPort: 8080, protocol: SCTP}
  - {port: 9000, endPort: 9000}
  - port: http-alt
  - protocol: UDP
  - {}
  to: [{ipBlock: {cidr: 0.0.0.0/0}}]`,
			want: "nets=team-a/n pods= egress[0.0.0.0/0 on UDP/53,TCP/80,SCTP/8000-8080,TCP/9000-9000,TCP/http-alt,UDP,TCP]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol, err := Parse(policy(t, tc.forNets, tc.spec))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := describe(pol); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if pol.Namespace != "team-a" || pol.Name != "p" {
				t.Errorf("policy %s/%s, want team-a/p", pol.Namespace, pol.Name)
			}
		})
	}
}

// TestParseSelectorSemantics: {} selects everything, a peer's absent selector is nil.
func TestParseSelectorSemantics(t *testing.T) {
	pol, err := Parse(policy(t, "n", `{podSelector: {}, ingress: [{from: [{namespaceSelector: {}}, {podSelector: {matchLabels: {a: b}}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !pol.PodSelector.Empty() {
		t.Errorf("podSelector {} = %q, want everything", pol.PodSelector)
	}
	peers := pol.IngressRules[0].Peers
	if peers[0].PodSelector != nil || peers[0].NamespaceSelector == nil || !peers[0].NamespaceSelector.Empty() {
		t.Errorf("namespaceSelector {} alone: %+v, want every namespace and no pod selector", peers[0])
	}
	if peers[1].NamespaceSelector != nil || peers[1].PodSelector == nil {
		t.Errorf("podSelector alone: %+v, want the policy's namespace (nil)", peers[1])
	}
}

// TestParseFaults: every rule, and the text that names the field and the value.
func TestParseFaults(t *testing.T) {
	const ann = "metadata.annotations[k8s.v1.cni.cncf.io/policy-for]: "
	for _, tc := range []struct {
		name, forNets, spec string
		want                string // the whole error
	}{
		{name: "except outside", spec: `{podSelector: {}, ingress: [{from: [{podSelector: {}}, {ipBlock: {cidr: 10.2.0.0/16, except: [10.1.0.0/16]}}]}]}`,
			want: `spec.ingress[0].from[1].ipBlock.except[0]: "10.1.0.0/16" is not inside cidr "10.2.0.0/16"`},
		{name: "except wider", spec: `{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.2.0.0/16, except: [10.0.0.0/8]}}]}]}`,
			want: `spec.ingress[0].from[0].ipBlock.except[0]: "10.0.0.0/8" is not inside cidr "10.2.0.0/16"`},
		{name: "except equal", spec: `{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.2.0.0/16, except: [10.2.3.4/16]}}]}]}`,
			want: `spec.egress[0].to[0].ipBlock.except[0]: "10.2.3.4/16" is all of cidr "10.2.0.0/16": an except must be strictly inside it`},
		{name: "except of another family", spec: `{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: "fd00::/8", except: [10.0.0.0/8]}}]}]}`,
			want: `spec.ingress[0].from[0].ipBlock.except[0]: "10.0.0.0/8" is not of the address family of cidr "fd00::/8"`},
		{name: "except not a CIDR", spec: `{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0]}}]}]}`,
			want: `spec.ingress[0].from[0].ipBlock.except[0]: "10.1.0.0" is not a CIDR`},
		{name: "cidr not a CIDR", spec: `{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]}`,
			want: `spec.ingress[0].from[0].ipBlock.cidr: "10.0.0.0/33" is not a CIDR`},
		{name: "cidr empty", spec: `{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: ""}}]}]}`,
			want: `spec.ingress[0].from[0].ipBlock.cidr: "" is not a CIDR`},
		{name: "ipBlock and selectors", spec: `{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, namespaceSelector: {}}]}]}`,
			want: `spec.ingress[0].from[0]: ipBlock together with podSelector or namespaceSelector: a peer is one or the other`},
		{name: "empty peer", spec: `{podSelector: {}, egress: [{to: [{}]}]}`,
			want: `spec.egress[0].to[0]: empty peer: podSelector, namespaceSelector or ipBlock is required`},
		{name: "protocol", spec: `{podSelector: {}, ingress: [{ports: [{protocol: ICMP, port: 1}]}]}`,
			want: `spec.ingress[0].ports[0].protocol: "ICMP" is not TCP, UDP or SCTP`},
		{name: "protocol in lower case", spec: `{podSelector: {}, ingress: [{ports: [{protocol: tcp}]}]}`,
			want: `spec.ingress[0].ports[0].protocol: "tcp" is not TCP, UDP or SCTP`},
		{name: "port 0", spec: `{podSelector: {}, ingress: [{ports: [{port: 0}]}]}`,
			want: `spec.ingress[0].ports[0].port: 0 is not a port number (1 to 65535)`},
		{name: "port too high", spec: `{podSelector: {}, ingress: [{ports: [{port: 65536}]}]}`,
			want: `spec.ingress[0].ports[0].port: 65536 is not a port number (1 to 65535)`},
		{name: "port name", spec: `{podSelector: {}, ingress: [{ports: [{port: http_alt}]}]}`,
			want: `spec.ingress[0].ports[0].port: "http_alt" is not a port name: must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)`},
		{name: "port number as a string", spec: `{podSelector: {}, ingress: [{ports: [{port: "80"}]}]}`,
			want: `spec.ingress[0].ports[0].port: "80" is not a port name: must contain at least one letter (a-z)`},
		{name: "endPort below port", spec: `{podSelector: {}, ingress: [{ports: [{port: 80, endPort: 79}]}]}`,
			want: `spec.ingress[0].ports[0].endPort: 79 is not a port number from port 80 to 65535`},
		{name: "endPort too high", spec: `{podSelector: {}, ingress: [{ports: [{port: 80, endPort: 65536}]}]}`,
			want: `spec.ingress[0].ports[0].endPort: 65536 is not a port number from port 80 to 65535`},
		{name: "endPort without port", spec: `{podSelector: {}, egress: [{ports: [{endPort: 90}]}]}`,
			want: `spec.egress[0].ports[0].endPort: endPort 90 without a port: a range needs its first port`},
		{name: "endPort with a named port", spec: `{podSelector: {}, egress: [{ports: [{port: http, endPort: 90}]}]}`,
			want: `spec.egress[0].ports[0].endPort: endPort 90 with the named port "http": a range needs a port number`},
		{name: "policyTypes unknown", spec: `{podSelector: {}, policyTypes: [Ingress, Both]}`,
			want: `spec.policyTypes[1]: "Both" is not Ingress or Egress`},
		{name: "policyTypes twice", spec: `{podSelector: {}, policyTypes: [Egress, Ingress, Egress]}`,
			want: `spec.policyTypes[2]: "Egress" is listed twice`},
		{name: "matchLabels key", spec: `{podSelector: {matchLabels: {"a b": x}}}`,
			want: `spec.podSelector.matchLabels[a b]: label key "a b": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`},
		{name: "matchLabels value", spec: `{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {a: "-x"}}}]}]}`,
			want: `spec.ingress[0].from[0].namespaceSelector.matchLabels[a]: label value "-x": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`},
		{name: "operator", spec: `{podSelector: {matchExpressions: [{key: a, operator: Gt, values: ["1"]}]}}`,
			want: `spec.podSelector.matchExpressions[0].operator: "Gt" is not In, NotIn, Exists or DoesNotExist`},
		{name: "In without values", spec: `{podSelector: {}, egress: [{to: [{podSelector: {matchExpressions: [{key: a, operator: In}]}}]}]}`,
			want: `spec.egress[0].to[0].podSelector.matchExpressions[0].values: operator In needs values`},
		{name: "Exists with values", spec: `{podSelector: {matchExpressions: [{key: a, operator: Exists, values: [b]}]}}`,
			want: `spec.podSelector.matchExpressions[0].values: operator Exists takes no values`},
		{name: "expression key", spec: `{podSelector: {matchExpressions: [{key: "", operator: Exists}]}}`,
			want: `spec.podSelector.matchExpressions[0].key: label key "": name part must be non-empty; name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`},
		{name: "annotation with three parts", forNets: "a/b/c", spec: `podSelector: {}`,
			want: ann + `entry 1: "a/b/c": not name nor namespace/name`},
		{name: "annotation with an empty entry", forNets: "a,,b", spec: `podSelector: {}`,
			want: ann + `entry 2: empty: a NetworkAttachmentDefinition name is expected`},
		{name: "annotation with a bad name", forNets: "a, ns/Storage", spec: `podSelector: {}`,
			want: ann + `entry 2: "ns/Storage": name "Storage": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{name: "every fault listed, in field order", forNets: "a/", spec: `
podSelector: {matchLabels: {"-": x}}
policyTypes: [Up]
ingress: [{from: [{}], ports: [{port: 0}, {protocol: ICMP}]}]
egress: [{to: [{ipBlock: {cidr: x}}]}]`,
			want: ann + `entry 1: "a/": name "": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'); ` +
				`spec.podSelector.matchLabels[-]: label key "-": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]'); ` +
				`spec.policyTypes[0]: "Up" is not Ingress or Egress; ` +
				`spec.ingress[0].from[0]: empty peer: podSelector, namespaceSelector or ipBlock is required; ` +
				`spec.ingress[0].ports[0].port: 0 is not a port number (1 to 65535); ` +
				`spec.ingress[0].ports[1].protocol: "ICMP" is not TCP, UDP or SCTP; ` +
				`spec.egress[0].to[0].ipBlock.cidr: "x" is not a CIDR`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.forNets == "" {
				tc.forNets = "n"
			}
			pol, err := Parse(policy(t, tc.forNets, tc.spec))
			if err == nil {
				t.Fatalf("admitted: %s", describe(pol))
			}
			if err.Error() != tc.want {
				t.Errorf("error\n%s\nwant\n%s", err, tc.want)
			}
			var pe *Error
			var fe *field.Error
			if !errors.As(err, &pe) || !errors.As(err, &fe) || fe.Field == "" || fe.Detail == "" {
				t.Errorf("error %v is not an *Error of *field.Error faults", err)
			}
		})
	}
}

// TestParseFaultTypes: each fault has the field.ErrorType that says what kind it is.
func TestParseFaultTypes(t *testing.T) {
	_, err := Parse(policy(t, "n", `
podSelector: {}
policyTypes: [Ingress, Ingress, X]
ingress: [{from: [{}, {ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/8]}}]}]`))
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v, want an *Error", err)
	}
	want := []field.ErrorType{field.ErrorTypeDuplicate, field.ErrorTypeNotSupported, field.ErrorTypeRequired,
		field.ErrorTypeForbidden, field.ErrorTypeInvalid}
	if len(pe.Faults) != len(want) {
		t.Fatalf("faults %v, want %d", pe.Faults, len(want))
	}
	for i, f := range pe.Faults {
		if f.Type != want[i] {
			t.Errorf("fault %d (%s): type %s, want %s", i, f.Field, f.Type, want[i])
		}
	}
	if pe.Faults[4].BadValue != "11.0.0.0/8" {
		t.Errorf("bad value %v, want the except as written", pe.Faults[4].BadValue)
	}
}

// TestParseNil: no object is an error, not a panic.
func TestParseNil(t *testing.T) {
	if _, err := Parse(nil); err == nil {
		t.Error("Parse(nil) succeeded")
	}
}
