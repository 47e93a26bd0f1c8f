package testbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// MultinetNamespace is the namespace deploy/ installs multinet into.
const MultinetNamespace = "multinet"

// multinetSelector selects the pods of multinet's DaemonSet.
const multinetSelector = "app.kubernetes.io/name=multinet"

// DeployMultinet builds the multinet image, imports it, and installs multinet with
// `kubectl apply -k` of overlay (a kustomization over deploy/, e.g. test/e2e/overlay) plus the
// API server's port, which this cluster chooses at start. It waits until multinetd is ready
// on the node and its conflist is in the node's CNI conf dir.
func (c *Cluster) DeployMultinet(t testing.TB, overlay string) {
	t.Helper()
	start := time.Now()
	c.BuildMultinetImage(t, MultinetImage)
	abs, err := filepath.Abs(overlay)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, abs) // kustomize refuses absolute resource paths
	if err != nil {
		t.Fatal(err)
	}
	kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
patches:
  - target:
      kind: DaemonSet
      name: multinet
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {name: KUBERNETES_SERVICE_PORT, value: "%d"}
`, rel, c.port)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	c.RunKubectl(t, "apply", "-k", dir)
	c.WaitMultinetReady(t)
	t.Logf("testbed: multinet deployed and ready in %s", time.Since(start).Round(time.Millisecond))
}

// WaitMultinetReady waits until a multinetd pod is Ready and 00-multinet.conflist is on disk,
// and returns the pod.
func (c *Cluster) WaitMultinetReady(t testing.TB) *corev1.Pod {
	t.Helper()
	var ready *corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := c.Client.CoreV1().Pods(MultinetNamespace).List(ctx, metav1.ListOptions{LabelSelector: multinetSelector})
		if err != nil {
			return false, nil
		}
		for i := range pods.Items {
			if pods.Items[i].DeletionTimestamp == nil && podReady(&pods.Items[i]) {
				ready = &pods.Items[i]
			}
		}
		_, statErr := os.Stat(filepath.Join(ClusterCNIConfDir, "00-multinet.conflist"))
		return ready != nil && statErr == nil, nil
	})
	if err != nil {
		t.Fatalf("testbed: multinetd not ready: %v\n%s", err, c.multinetDiagnostics(t))
	}
	return ready
}

// MultinetPod returns the running multinetd pod (not being deleted), or nil.
func (c *Cluster) MultinetPod(t testing.TB) *corev1.Pod {
	t.Helper()
	pods, err := c.Client.CoreV1().Pods(MultinetNamespace).List(t.Context(), metav1.ListOptions{LabelSelector: multinetSelector})
	if err != nil {
		t.Fatalf("testbed: listing multinet pods: %v", err)
	}
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp == nil {
			return &pods.Items[i]
		}
	}
	return nil
}

// MultinetLogs returns the logs of the current multinetd container.
func (c *Cluster) MultinetLogs(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := c.KubectlCmd(ctx, "-n", MultinetNamespace, "logs", "-l", multinetSelector, "--tail=200").CombinedOutput()
	return string(out)
}

// multinetDiagnostics tells why multinetd is not ready: its pods, their Events and logs.
func (c *Cluster) multinetDiagnostics(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pods, _ := c.KubectlCmd(ctx, "-n", MultinetNamespace, "get", "pods,daemonsets", "-o", "wide").CombinedOutput()
	desc, _ := c.KubectlCmd(ctx, "-n", MultinetNamespace, "describe", "pods").CombinedOutput()
	return fmt.Sprintf("%s\n%s\nlogs:\n%s", pods, desc, c.MultinetLogs(t))
}
