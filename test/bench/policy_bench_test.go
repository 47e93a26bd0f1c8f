package bench

import (
	"fmt"
	"os"
	"testing"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/multinet/multinet/internal/policy/spec"
	"github.com/multinet/multinet/internal/testbed"
)

// policyPods is how many pods BenchmarkPolicyDaemon times ADD and DEL of, per row.
const policyPods = 30

// BenchmarkPolicyDaemon measures MultiNetworkPolicy in a real multinetd on a real
// kube-apiserver: the p50 of a pod's ADD+DEL (one secondary network) with no policy and with
// policies selecting the pod, the daemon's RSS and CPU while 1,000 policies arrive (one in
// ten selects every pod of the namespace, the others none), and the RSS it keeps with them.
// Run with -benchtime 1x (root needed).
func BenchmarkPolicyDaemon(b *testing.B) {
	for range b.N {
		bd := newBed(b)
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		without := bd.addDelP50(b, "nopol")
		pid := bd.PID()
		rssBefore, cpu := rssSplit(b, pid), cpuTime(b, pid)
		start := time.Now()
		bd.createPolicies(b, 1000)
		bd.waitPolicies(b, 1000)
		took, cpu := time.Since(start), cpuTime(b, pid)-cpu
		with := bd.addDelP50(b, "pol")
		fmt.Fprintf(tw, "multinetd, 1,000 MultiNetworkPolicies (%d pods' ADD+DEL a row)\t\n", policyPods)
		fmt.Fprintf(tw, "ADD+DEL p50, no policy\t%s\n", ms(without))
		fmt.Fprintf(tw, "ADD+DEL p50, 100 policies select the pod's interface\t%s (+%s)\n", ms(with), ms(with-without))
		fmt.Fprintf(tw, "RSS before the policies\t%s\n", rssBefore)
		fmt.Fprintf(tw, "RSS with 1,000 policies\t%s\n", rssSplit(b, pid))
		fmt.Fprintf(tw, "1,000 policies created -> all known\t%s (CPU %s, %s a policy)\n", ms(took), ms(cpu), ms(cpu/1000))
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// addDelP50 is the p50 of policyPods pods' ADD+DEL with net1.
func (bd *bed) addDelP50(b *testing.B, prefix string) time.Duration {
	var took []time.Duration
	for _, sb := range bd.pods(b, prefix, policyPods, 1) {
		took = append(took, bd.multinetAddDel(b, sb))
	}
	return percentile(took, 0.5)
}

// createPolicies creates n policies for net1 in the bench namespace: every tenth selects
// every pod (ingress from 10.0.0.0/8 on one port), the others select app=none.
func (bd *bed) createPolicies(b *testing.B, n int) {
	client, err := dynamic.NewForConfig(bd.CP.Config)
	if err != nil {
		b.Fatal(err)
	}
	res := client.Resource(spec.GroupVersionResource(spec.V1beta2)).Namespace(namespace)
	for i := range n {
		selector := map[string]any{"matchLabels": map[string]any{"app": "none"}}
		if i%10 == 0 {
			selector = map[string]any{}
		}
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": spec.Group + "/" + spec.V1beta2, "kind": spec.Kind,
			"metadata": map[string]any{"name": fmt.Sprintf("p%d", i), "namespace": namespace,
				"annotations": map[string]any{spec.PolicyForAnnotation: "net1"}},
			"spec": map[string]any{"podSelector": selector, "ingress": []any{map[string]any{
				"from":  []any{map[string]any{"ipBlock": map[string]any{"cidr": "10.0.0.0/8"}}},
				"ports": []any{map[string]any{"port": int64(1000 + i)}},
			}}},
		}}
		if _, err := res.Create(testbed.Ctx(b), obj, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// waitPolicies waits until multinetd knows n policies (multinet_policies).
func (bd *bed) waitPolicies(b *testing.B, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for bd.scrape(b, "multinet_policies")["multinet_policies"] < float64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("multinetd knows %v policies after 2 minutes, want %d", bd.scrape(b, "multinet_policies"), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
