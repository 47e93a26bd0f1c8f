package cli_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/multinet/multinet/internal/cli"
	"github.com/multinet/multinet/internal/policy/spec"
	"github.com/multinet/multinet/internal/selection"
	"github.com/multinet/multinet/internal/testbed"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

const mnpCRD = spec.Resource + "." + spec.Group

// policyWorld is a control plane (no node: the pods are API objects with the
// network-status multinetd would write) with MultiNetworkPolicies in namespace ns.
type policyWorld struct {
	cp  *testbed.ControlPlane
	dyn dynamic.Interface
	ns  string
}

// pod creates a pod with labels, a networks annotation and network-status entries (the
// cluster network's first), each "ifname network ip"; "http" is a named container port.
func (w *policyWorld) pod(t *testing.T, name, app, networks string, entries ...string) {
	st := []nadv1.NetworkStatus{{Name: "cluster", Interface: "eth0", IPs: []string{"10.244.0.9"}, Default: true}}
	for _, e := range entries {
		f := strings.Fields(e)
		st = append(st, nadv1.NetworkStatus{Interface: f[0], Name: f[1], IPs: []string{f[2]}})
	}
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.ns, Labels: map[string]string{"app": app},
			Annotations: map[string]string{selection.NetworksAnnotation: networks, nadv1.NetworkStatusAnnot: string(raw)}},
		Spec: corev1.PodSpec{NodeName: testbed.NodeName, Containers: []corev1.Container{{Name: "c", Image: "pause",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
	if _, err := w.cp.Client.CoreV1().Pods(w.ns).Create(testbed.Ctx(t), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// policy creates a MultiNetworkPolicy of the served version from its spec in JSON.
func (w *policyWorld) policy(t *testing.T, version, name, policyFor, specJSON string) {
	obj := &unstructured.Unstructured{}
	if err := json.Unmarshal([]byte(fmt.Sprintf(`{"apiVersion":%q,"kind":%q,"metadata":{"name":%q,"annotations":{%q:%q}},"spec":%s}`,
		spec.Group+"/"+version, spec.Kind, name, spec.PolicyForAnnotation, policyFor, specJSON)), &obj.Object); err != nil {
		t.Fatal(err)
	}
	if _, err := w.dyn.Resource(spec.GroupVersionResource(version)).Namespace(w.ns).Create(testbed.Ctx(t), obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create policy %s: %v", name, err)
	}
}

// servedVersion is v1beta2 or v1beta1 as served, "" for none.
func (w *policyWorld) servedVersion(t *testing.T) string {
	for _, v := range []string{spec.V1beta2, spec.V1beta1} {
		_, err := w.dyn.Resource(spec.GroupVersionResource(v)).List(testbed.Ctx(t), metav1.ListOptions{Limit: 1})
		if err == nil {
			return v
		}
		if !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	return ""
}

// waitServed waits until the version served first is want ("": none). The versions of a
// new CRD are served one after the other.
func (w *policyWorld) waitServed(t *testing.T, want string) {
	var v string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if v = w.servedVersion(t); v == want {
			return
		}
	}
	t.Fatalf("%s: %q served after 30s, want %q", mnpCRD, v, want)
}

// installCRD creates a CRD of MultiNetworkPolicy serving versions (no schema; the last one
// stored), one that differs from deploy/crds', and waits until the last is served.
func (w *policyWorld) installCRD(t *testing.T, versions ...string) {
	var vs []any
	for i, v := range versions {
		vs = append(vs, map[string]any{"name": v, "served": true, "storage": i == len(versions)-1,
			"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
	}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": mnpCRD},
		"spec": map[string]any{"group": spec.Group, "scope": "Namespaced", "versions": vs,
			"names": map[string]any{"plural": spec.Resource, "singular": "multi-networkpolicy", "kind": spec.Kind}},
	}}
	if _, err := w.dyn.Resource(crdResource).Create(testbed.Ctx(t), crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.waitServed(t, versions[len(versions)-1])
}

// readyDaemon creates a Running, Ready stand-in for the node's multinetd pod, so that
// diagnose finds the pods healthy.
func (w *policyWorld) readyDaemon(t *testing.T) {
	w.cp.CreateNamespace(t, cli.DaemonNamespace)
	pods := w.cp.Client.CoreV1().Pods(cli.DaemonNamespace)
	pod, err := pods.Create(testbed.Ctx(t), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "multinet-x1", Labels: map[string]string{"app.kubernetes.io/name": "multinet"}},
		Spec:       corev1.PodSpec{NodeName: testbed.NodeName, Containers: []corev1.Container{{Name: "multinetd", Image: "multinetd"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if _, err := pods.UpdateStatus(testbed.Ctx(t), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// policiesOf reads, from `status -o json`, the policies of each pod's interfaces:
// "pod ifname" -> policies.
func policiesOf(t *testing.T, out string) map[string][]string {
	var st []cli.PodNetworks
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	got := map[string][]string{}
	for _, p := range st {
		for _, i := range p.Interfaces {
			got[p.Name+" "+i.Name] = i.Policies
		}
	}
	return got
}

// wideRow is the POLICIES cell of pod's row of interface ifname in `status -o wide`.
func wideRow(out, pod, ifname string) string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == pod && f[1] == ifname {
			return f[len(f)-1]
		}
	}
	return "(no row)"
}

// TestKubectlMultinetPolicies shows which MultiNetworkPolicies select each interface: in
// status (-o wide, json) and in diagnose's Policies section with its warnings, against a
// real apiserver; that without the CRD both go on, with nothing to show; and that v1beta1
// is read where v1beta2 is not served. The same world shows the DRA device of an interface
// (testDevices), the other column and fields -o wide and json add.
func TestKubectlMultinetPolicies(t *testing.T) {
	cp := testbed.StartControlPlane(t)
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	w := &policyWorld{cp: cp, dyn: dyn, ns: "p"}
	cp.CreateNamespace(t, w.ns)
	w.readyDaemon(t)
	cp.CreateNAD(t, w.ns, "blue", `{"cniVersion":"1.0.0","name":"blue","type":"bridge"}`)
	cp.CreateNAD(t, w.ns, "green", `{"cniVersion":"1.0.0","name":"green","type":"bridge"}`)
	w.pod(t, "server", "server", "blue,green", "net1 p/blue 10.20.1.2", "net2 p/green 10.20.2.2")
	w.pod(t, "client", "client", "blue", "net1 p/blue 10.20.1.3")
	w.pod(t, "ghost", "client", "green", "net1 p/green 10.20.2.4") // a client with no address on blue
	w.pod(t, "bystander", "other", "blue", "net1 p/blue 10.20.1.5")
	k := &kubectl{t: t, kubeconfig: cp.Kubeconfig, namespace: w.ns}

	version := spec.V1beta2 // the CRD of deploy/crds, which the testbed installs, stores it
	w.waitServed(t, version)
	w.policy(t, version, "allow-client", "blue", `{"podSelector":{"matchLabels":{"app":"server"}},
		"ingress":[{"from":[{"podSelector":{"matchLabels":{"app":"client"}}}],"ports":[{"port":"http"}]}]}`)
	w.policy(t, version, "deny-egress", "p/blue", `{"podSelector":{"matchLabels":{"app":"server"}},"policyTypes":["Egress"]}`)
	w.policy(t, version, "other-net", "nope", `{"podSelector":{}}`)
	w.policy(t, version, "broken", "blue", `{"podSelector":{},
		"ingress":[{"from":[{"ipBlock":{"cidr":"10.1.0.0/16","except":["10.2.0.0/24"]}}]}]}`)

	t.Run("Status", func(t *testing.T) {
		k.t = t
		got := policiesOf(t, k.want(0, nil, "status", "-o", "json"))
		want := map[string][]string{"server net1": {"p/allow-client", "p/deny-egress"}, "server net2": nil, "server eth0": nil,
			"client net1": nil, "client eth0": nil, "ghost net1": nil, "ghost eth0": nil, "bystander net1": nil, "bystander eth0": nil}
		for key, policies := range want {
			if p, ok := got[key]; !ok || !slices.Equal(p, policies) {
				t.Errorf("status -o json: %s has policies %q, want %q", key, p, policies)
			}
		}
		out := k.want(0, []string{"POLICIES"}, "status", "-o", "wide")
		for _, c := range []struct{ pod, ifname, want string }{
			{"server", "net1", "p/allow-client,p/deny-egress"}, {"server", "net2", "-"}, {"client", "net1", "-"},
		} {
			if cell := wideRow(out, c.pod, c.ifname); cell != c.want {
				t.Errorf("status -o wide: %s %s POLICIES %q, want %q", c.pod, c.ifname, cell, c.want)
			}
		}
		if out := k.want(0, nil, "status"); strings.Contains(out, "POLICIES") {
			t.Errorf("status without -o wide has a POLICIES column:\n%s", out)
		}
	})

	t.Run("Diagnose", func(t *testing.T) {
		k.t = t
		out := k.want(0, []string{"Healthy: pod p/server",
			"\nPolicies:\n        MultiNetworkPolicies: 4 in namespace p (" + version + ")\n",
			"      net1 p/blue: p/allow-client, p/deny-egress; ingress isolated (1 allow entry), egress isolated (no allow entry: all denied)\n",
			"      net2 p/green: no policy selects it; all its traffic passes\n",
			"  WARN  policy p/broken does not parse; multinetd enforces nothing of it: spec.ingress[0].from[0].ipBlock.except[0]: ",
			"  WARN  policy p/other-net: policy-for names p/nope: no such NetworkAttachmentDefinition\n",
			"  WARN  policy p/other-net selects the pod but none of its interfaces: policy-for names p/nope, the pod has p/blue,p/green\n",
			"  WARN  policy p/allow-client: 1 peer pod(s) it selects have no address on p/blue, so never match: p/ghost\n",
		}, "diagnose", "server")
		if strings.Count(out, "WARN") != 4 {
			t.Errorf("diagnose server: want 4 warnings, got:\n%s", out)
		}
		out = k.want(0, []string{"      net1 p/blue: no policy selects it; all its traffic passes\n",
			"  WARN  policy p/other-net selects the pod but none of its interfaces: policy-for names p/nope, the pod has p/blue\n"},
			"diagnose", "bystander")
		if strings.Contains(out, "p/allow-client") {
			t.Errorf("diagnose bystander names a policy that does not select it:\n%s", out)
		}
	})

	t.Run("Devices", func(t *testing.T) { // DRA devices beside the policies in -o wide and json
		k.t = t
		testDevices(t, w, k)
	})

	t.Run("NoCRD", func(t *testing.T) {
		k.t = t
		if err := dyn.Resource(crdResource).Delete(testbed.Ctx(t), mnpCRD, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		w.waitServed(t, "")
		out := k.want(0, []string{"POLICIES"}, "status", "-o", "wide")
		if cell := wideRow(out, "server", "net1"); cell != "-" || strings.Contains(out, "warning") {
			t.Errorf("status -o wide without the CRD: server net1 POLICIES %q, want -, and no warning:\n%s", cell, out)
		}
		for key, p := range policiesOf(t, k.want(0, nil, "status", "-o", "json")) {
			if p != nil {
				t.Errorf("status -o json without the CRD: %s has policies %q", key, p)
			}
		}
		k.want(0, []string{"\nPolicies:\n        MultiNetworkPolicy is not served (no CRD): no policy applies\n"}, "diagnose", "server")
	})

	t.Run("V1beta1Only", func(t *testing.T) {
		k.t = t
		w.installCRD(t, spec.V1beta1)
		w.policy(t, spec.V1beta1, "allow-client", "blue", `{"podSelector":{"matchLabels":{"app":"server"}},"ingress":[{}]}`)
		if got := policiesOf(t, k.want(0, nil, "status", "server", "-o", "json"))["server net1"]; !slices.Equal(got, []string{"p/allow-client"}) {
			t.Errorf("status -o json with v1beta1 served alone: server net1 has policies %q, want [p/allow-client]", got)
		}
		k.want(0, []string{"MultiNetworkPolicies: 1 in namespace p (v1beta1)\n",
			"net1 p/blue: p/allow-client; ingress isolated (1 allow entry), egress not isolated\n"}, "diagnose", "server")
	})
}
