package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/testbed"
)

// testHotplugDeployment: `kubectl annotate` on the running pods of a Deployment adds a
// network; the pods ping each other over it; the network is removed again; the pods are
// deleted; the network's IPAM store holds nothing for them.
func testHotplugDeployment(t *testing.T, e *env) {
	green := e.networks(t, "green")[0]
	blue := e.networks(t, "blue")[0]
	e.startDeployment(t, "tenant", "hp", 2, blue)
	pods := e.podNames(t, "tenant", "app=hp")
	e.c.RunKubectl(t, "-n", "tenant", "annotate", "pods", "-l", "app=hp", "--overwrite",
		"k8s.v1.cni.cncf.io/networks=tenant/blue,tenant/green")
	for _, p := range pods {
		e.waitInterfaces(t, "tenant", p, "eth0", "net1", "net2")
		e.checkPodNetworks(t, "tenant", p, blue, green)
	}
	to := e.addrs(t, "tenant", pods[1])["net2"]
	out := e.c.MustExec(t, "tenant", pods[0], "ping", "-c", "2", "-W", "2", "-I", "net2", to)
	if !strings.Contains(out, "2 packets received") {
		t.Fatalf("ping over the hot-plugged net2 to %s:\n%s", to, out)
	}
	if evs := e.c.PodEvents(t, "tenant", pods[0]); !strings.Contains(evs, "Plugged") {
		t.Errorf("no Plugged Event on %s:\n%s", pods[0], evs)
	}
	e.c.RunKubectl(t, "-n", "tenant", "annotate", "pods", "-l", "app=hp", "--overwrite",
		"k8s.v1.cni.cncf.io/networks=tenant/blue")
	for _, p := range pods {
		e.waitInterfaces(t, "tenant", p, "eth0", "net1")
	}
	e.c.RunKubectl(t, "-n", "tenant", "annotate", "pods", "-l", "app=hp", "--overwrite",
		"k8s.v1.cni.cncf.io/networks=tenant/blue,tenant/green")
	for _, p := range pods {
		e.waitInterfaces(t, "tenant", p, "eth0", "net1", "net2")
	}
	greenBefore := len(testbed.Allocations(t, ipamDir("green")))
	e.c.RunKubectl(t, "-n", "tenant", "delete", "deployment", "hp", "--wait=true")
	for _, p := range pods {
		e.c.DeletePod(t, "tenant", p) // waits until it is gone: its sandbox DELed
	}
	if n := len(testbed.Allocations(t, ipamDir("green"))); n != greenBefore-len(pods) {
		t.Errorf("green holds %d addresses after the pods were deleted, %d before: hot-plugged addresses leaked", n, greenBefore)
	}
}

// startDeployment creates a Deployment of busybox pods asking for networks and waits until its
// pods run.
func (e *env) startDeployment(t *testing.T, namespace, name string, replicas int32, networks ...network) {
	t.Helper()
	tmpl := testbed.BusyboxPod(namespace, "", annotation(networks))
	tmpl.Labels = map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec},
		},
	}
	if _, err := e.c.Client.AppsV1().Deployments(namespace).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.c.RunKubectl(t, "-n", namespace, "rollout", "status", "deployment/"+name, "--timeout=3m")
}

// podNames lists the names of the namespace's pods with the label selector, sorted.
func (e *env) podNames(t *testing.T, namespace, selector string) []string {
	t.Helper()
	list, err := e.c.Client.CoreV1().Pods(namespace).List(t.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list.Items {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	if len(names) < 2 {
		t.Fatalf("pods %v with %s, want at least 2", names, selector)
	}
	return names
}

// waitInterfaces waits until the pod's interfaces (ip addr in the pod, IPv4, lo left out) are
// want.
func (e *env) waitInterfaces(t *testing.T, namespace, pod string, want ...string) {
	t.Helper()
	var got map[string]string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		got = e.addrs(t, namespace, pod)
		if len(got) == len(want) && hasAll(got, want) {
			return
		}
	}
	t.Fatalf("pod %s has interfaces %v, want %v\n%s", pod, got, want, e.c.PodEvents(t, namespace, pod))
}

func hasAll(m map[string]string, keys []string) bool {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}
