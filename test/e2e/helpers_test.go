package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/testbed"
)

// env is the cluster the subtests share, and the networks they created.
type env struct {
	c    *testbed.Cluster
	nets map[string]network // by "namespace/name"
	// draReady says namespace dra and its device-backed network exist (dra_test.go).
	draReady bool
}

// network is a secondary network of the tests: a NAD of a bridge "mnt-<name>" with a test
// subnet 10.10.<n>.0/24, no gateway, no NAT.
type network struct {
	namespace, name string
	subnetPrefix    string // "10.10.3."
}

// createNetwork creates the NAD of network number n in namespace.
func (e *env) createNetwork(t testing.TB, namespace, name string, n int) network {
	t.Helper()
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[{"type":"bridge","bridge":"mnt-%s",
		"isGateway":false,"ipMasq":false,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.10.%d.0/24"}]]}}]}`, name, name, n)
	e.c.CreateNAD(t, namespace, name, conf)
	net := network{namespace: namespace, name: name, subnetPrefix: fmt.Sprintf("10.10.%d.", n)}
	if e.nets == nil {
		e.nets = map[string]network{}
	}
	e.nets[namespace+"/"+name] = net
	return net
}

// networks returns the networks of namespace "tenant" created earlier, by name.
func (e *env) networks(t *testing.T, names ...string) []network {
	t.Helper()
	var out []network
	for _, n := range names {
		net, ok := e.nets["tenant/"+n]
		if !ok {
			t.Fatalf("network tenant/%s was not created", n)
		}
		out = append(out, net)
	}
	return out
}

// podNetworks returns the networks a pod's annotation asks for (the short form annotation
// writes).
func (e *env) podNetworks(p corev1.Pod) []network {
	var out []network
	for _, ref := range strings.Split(p.Annotations[nadv1.NetworkAttachmentAnnot], ",") {
		if net, ok := e.nets[ref]; ok {
			out = append(out, net)
		}
	}
	return out
}

// failedSandboxes counts the FailedCreatePodSandBox Events of the pods.
func (e *env) failedSandboxes(t *testing.T, pods []string) int {
	t.Helper()
	n := 0
	for _, p := range pods {
		evs, err := e.c.Client.CoreV1().Events("tenant").List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + p})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs.Items {
			if ev.Reason == "FailedCreatePodSandBox" {
				n += int(ev.Count)
			}
		}
	}
	return n
}

func itoa(n int) string { return strconv.Itoa(n) }

// startPod creates a busybox pod asking for networks (the annotation's short form) and
// waits until it is Running.
func (e *env) startPod(t *testing.T, namespace, name string, networks ...network) {
	t.Helper()
	e.c.CreatePodObject(t, testbed.BusyboxPod(namespace, name, annotation(networks)))
	e.c.WaitPodRunning(t, namespace, name, 3*time.Minute)
}

func annotation(networks []network) map[string]string {
	if len(networks) == 0 {
		return nil
	}
	var names []string
	for _, n := range networks {
		names = append(names, n.namespace+"/"+n.name)
	}
	return map[string]string{nadv1.NetworkAttachmentAnnot: strings.Join(names, ",")}
}

// addrs returns the pod's IPv4 addresses by interface, read in the pod with `ip`.
func (e *env) addrs(t *testing.T, namespace, pod string) map[string]string {
	t.Helper()
	out := e.c.MustExec(t, namespace, pod, "ip", "-o", "-4", "addr", "show")
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line) // 2: eth0    inet 10.244.0.2/24 brd ...
		if len(f) >= 4 && f[2] == "inet" && f[1] != "lo" {
			got[f[1]] = strings.Split(f[3], "/")[0]
		}
	}
	return got
}

// checkPodNetworks checks that the pod has eth0 on the cluster network and netN on the Nth
// network, in the kernel (ip addr in the pod) and in its network-status annotation.
func (e *env) checkPodNetworks(t *testing.T, namespace, pod string, networks ...network) {
	t.Helper()
	got := e.addrs(t, namespace, pod)
	if !strings.HasPrefix(got["eth0"], "10.244.0.") {
		t.Errorf("pod %s: eth0 address %q, want one in %s (addresses %v)", pod, got["eth0"], testbed.ClusterSubnet, got)
	}
	for i, n := range networks {
		ifname := fmt.Sprintf("net%d", i+1)
		if !strings.HasPrefix(got[ifname], n.subnetPrefix) {
			t.Errorf("pod %s: %s address %q, want one in %s0/24 (addresses %v)", pod, ifname, got[ifname], n.subnetPrefix, got)
		}
	}
	if len(got) != 1+len(networks) {
		t.Errorf("pod %s has interfaces %v, want eth0 and %d secondary", pod, got, len(networks))
	}
	st := e.networkStatus(t, namespace, pod, 1+len(networks))
	for i, s := range st {
		want := "eth0"
		if i > 0 {
			want = fmt.Sprintf("net%d", i)
		}
		if s.Interface != want || len(s.IPs) == 0 || s.IPs[0] != got[want] {
			t.Errorf("pod %s network-status[%d] = %+v, want interface %s with IP %s", pod, i, s, want, got[want])
		}
	}
}

// networkStatus waits until the pod's network-status has want entries and returns them.
func (e *env) networkStatus(t *testing.T, namespace, pod string, want int) []nadv1.NetworkStatus {
	t.Helper()
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		p, err := e.c.Client.CoreV1().Pods(namespace).Get(t.Context(), pod, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last = p.Annotations[nadv1.NetworkStatusAnnot]
		var st []nadv1.NetworkStatus
		if last != "" && json.Unmarshal([]byte(last), &st) == nil && len(st) == want {
			return st
		}
	}
	t.Fatalf("network-status of %s/%s never had %d entries; last %q", namespace, pod, want, last)
	return nil
}
