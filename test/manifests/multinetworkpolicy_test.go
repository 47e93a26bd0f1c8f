package manifests

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/multinet/multinet/internal/policy/spec"
	"github.com/multinet/multinet/internal/testbed"
)

// mnpYAML is a MultiNetworkPolicy of namespace team-a with a range of ports (endPort) and a
// named port.
const mnpYAML = `
metadata:
  annotations: {k8s.v1.cni.cncf.io/policy-for: storage}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
      namespaceSelector: {}
    - ipBlock: {cidr: 10.1.0.0/16, except: [10.1.9.0/24]}
    ports:
    - {protocol: TCP, port: 8000, endPort: 8080}
    - {protocol: UDP, port: dns}
`

// TestMultiNetworkPolicyVersions installs deploy/crds in a real kube-apiserver and checks the
// MultiNetworkPolicy CRD: v1beta1 and v1beta2 are both served, an object written through one
// version reads back through the other, endPort is kept in v1beta2 (the storage version) and
// absent from v1beta1's view, what v1beta2 returns is what spec.Parse accepts, and the schema
// holds policyTypes to Ingress and Egress; `kubectl get` shows the policy-for annotation.
func TestMultiNetworkPolicyVersions(t *testing.T) {
	cp := testbed.StartControlPlane(t)
	cp.CreateNamespace(t, "team-a")
	checkServed(t, cp)
	client, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	mnps := func(version string) dynamic.ResourceInterface {
		return client.Resource(spec.GroupVersionResource(version)).Namespace("team-a")
	}
	ctx := t.Context()
	for _, tc := range []struct{ write, read string }{{spec.V1beta1, spec.V1beta2}, {spec.V1beta2, spec.V1beta1}} {
		name := "written-as-" + tc.write
		obj := mnpObject(t, tc.write, name)
		if _, err := mnps(tc.write).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		got, err := mnps(tc.read).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get %s as %s: %v", name, tc.read, err)
		}
		if got.GetAPIVersion() != spec.Group+"/"+tc.read || got.GetKind() != spec.Kind {
			t.Errorf("%s read as %s: %s %s", name, tc.read, got.GetAPIVersion(), got.GetKind())
		}
		// endPort is in v1beta2's schema only: v1beta1 prunes it, on write and on read.
		wantEnd := tc.write == spec.V1beta2 && tc.read == spec.V1beta2
		checkPorts(t, name+" as "+tc.read, got, wantEnd)
		v2, err := mnps(spec.V1beta2).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkPorts(t, name+" as v1beta2", v2, tc.write == spec.V1beta2)
		checkParses(t, v2, tc.write == spec.V1beta2)
	}
	checkNetworksColumn(t, cp, "storage")
	bad := mnpObject(t, spec.V1beta2, "bad-type")
	if err := unstructured.SetNestedStringSlice(bad.Object, []string{"Ingress", "Both"}, "spec", "policyTypes"); err != nil {
		t.Fatal(err)
	}
	_, err = mnps(spec.V1beta2).Create(ctx, bad, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), `spec.policyTypes[1]: Unsupported value: "Both"`) {
		t.Errorf("policyTypes [Ingress, Both]: error %v, want the schema's enum refusal", err)
	}
}

// checkServed asks discovery for both versions of the resource.
func checkServed(t *testing.T, cp *testbed.ControlPlane) {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, version := range []string{spec.V1beta1, spec.V1beta2} {
		list, err := dc.ServerResourcesForGroupVersion(spec.Group + "/" + version)
		if err != nil {
			t.Fatalf("discovery of %s/%s: %v", spec.Group, version, err)
		}
		i := slices.IndexFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == spec.Resource })
		if i < 0 {
			t.Fatalf("%s/%s does not serve %s", spec.Group, version, spec.Resource)
		}
		r := list.APIResources[i]
		if r.Kind != spec.Kind || !r.Namespaced || r.SingularName != "multi-networkpolicy" || !slices.Equal(r.ShortNames, []string{"multi-policy"}) {
			t.Errorf("%s/%s %s: kind %s, namespaced %v, singular %q, short names %q", spec.Group, version, r.Name, r.Kind, r.Namespaced, r.SingularName, r.ShortNames)
		}
	}
}

func mnpObject(t *testing.T, version, name string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(mnpYAML), &obj.Object); err != nil {
		t.Fatalf("mnpYAML: %v", err)
	}
	obj.SetAPIVersion(spec.Group + "/" + version)
	obj.SetKind(spec.Kind)
	obj.SetName(name)
	return obj
}

// checkPorts checks that the ports read back are those written, endPort only if wantEnd.
func checkPorts(t *testing.T, what string, obj *unstructured.Unstructured, wantEnd bool) {
	t.Helper()
	rules, _, _ := unstructured.NestedSlice(obj.Object, "spec", "ingress")
	if len(rules) != 1 {
		t.Fatalf("%s: ingress %v", what, rules)
	}
	ports, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "ports")
	want := `[{"endPort":8080,"port":8000,"protocol":"TCP"},{"port":"dns","protocol":"UDP"}]`
	if !wantEnd {
		want = `[{"port":8000,"protocol":"TCP"},{"port":"dns","protocol":"UDP"}]`
	}
	if got, _ := json.Marshal(ports); string(got) != want {
		t.Errorf("%s: ports %s, want %s", what, got, want)
	}
}

// checkParses decodes obj into the Go type and parses it as multinetd does.
func checkParses(t *testing.T, obj *unstructured.Unstructured, wantEnd bool) {
	t.Helper()
	var p spec.MultiNetworkPolicy
	data, _ := json.Marshal(obj.Object)
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("%s into the Go type: %v", obj.GetName(), err)
	}
	pol, err := spec.Parse(&p)
	if err != nil {
		t.Fatalf("%s: spec.Parse: %v", obj.GetName(), err)
	}
	want := spec.Port{Protocol: spec.TCP, Number: 8000}
	if wantEnd {
		want.End = 8080
	}
	r := pol.IngressRules[0]
	if len(r.Peers) != 2 || r.Peers[1].Block == nil || len(r.Ports) != 2 || r.Ports[0] != want ||
		r.Ports[1] != (spec.Port{Protocol: spec.UDP, Name: "dns"}) || !slices.Equal(pol.Networks, []string{"team-a/storage"}) {
		t.Errorf("%s parsed to %+v", obj.GetName(), pol)
	}
}

// checkNetworksColumn asks for the policies as kubectl does, as a Table, and checks that each
// version's Networks column shows the policy-for annotation, want.
func checkNetworksColumn(t *testing.T, cp *testbed.ControlPlane, want string) {
	t.Helper()
	client, err := rest.HTTPClientFor(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, version := range []string{spec.V1beta1, spec.V1beta2} {
		url := cp.URL + "/apis/" + spec.Group + "/" + version + "/namespaces/team-a/" + spec.Resource
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var table metav1.Table
		err = json.NewDecoder(resp.Body).Decode(&table)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatalf("%s table: %v", version, err)
		}
		col := slices.IndexFunc(table.ColumnDefinitions, func(c metav1.TableColumnDefinition) bool { return c.Name == "Networks" })
		if col < 0 || len(table.Rows) == 0 {
			t.Fatalf("%s table: columns %+v, %d rows", version, table.ColumnDefinitions, len(table.Rows))
		}
		for _, row := range table.Rows {
			if row.Cells[col] != want {
				t.Errorf("%s table: Networks %v, want %q", version, row.Cells[col], want)
			}
		}
	}
}
