package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/testbed"
)

// demoSuccess is the demo's last line when everything worked.
const demoSuccess = "DEMO OK: multinet ran as a DaemonSet on a real node; 3 pods got eth0 + 2 secondary networks, talked over each, had one unplugged and plugged back while running, and a MultiNetworkPolicy let one pod in over storage and kept another out"

// TestRealNodeDemo is `make demo`: a real one-node cluster, multinet installed from deploy/,
// NADs and a Deployment of three annotated pods applied with kubectl, each pod's interfaces
// and network-status shown, a ping over each secondary network between pods, then a clean
// teardown. It prints each step; it is also an end-to-end test (it fails on any fault).
func TestRealNodeDemo(t *testing.T) {
	testbed.RequireRoot(t)
	say := func(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }
	show := func(out string) { fmt.Println(strings.TrimRight(out, "\n")) }

	say("1/9 Starting a real node: etcd, kube-apiserver (RBAC), controller-manager, scheduler, containerd, kubelet")
	c := testbed.StartCluster(t)
	info := c.NodeInfo(t)
	fmt.Printf("kubelet %s, container runtime %s, runc %s\n", info.KubeletVersion, info.ContainerRuntimeVersion, c.RuncVersion(t))
	show(c.RunKubectl(t, "get", "nodes", "-o", "wide"))

	say("2/9 Installing multinet: kubectl apply -k (deploy/ + the test bed overlay)")
	c.DeployMultinet(t, overlay)
	show(c.RunKubectl(t, "-n", testbed.MultinetNamespace, "get", "daemonset,pods"))

	say("3/9 Creating two secondary networks: kubectl apply -f test/e2e/demo/networks.yaml")
	show(c.RunKubectl(t, "apply", "-f", "demo/networks.yaml"))
	show(c.RunKubectl(t, "-n", "demo", "get", "network-attachment-definitions"))

	say("4/9 Starting a Deployment of 3 pods asking for both: kubectl apply -f test/e2e/demo/deployment.yaml")
	show(c.RunKubectl(t, "apply", "-f", "demo/deployment.yaml"))
	c.RunKubectl(t, "-n", "demo", "rollout", "status", "deployment/web", "--timeout=3m")
	show(c.RunKubectl(t, "-n", "demo", "get", "pods", "-o", "wide"))

	say("5/9 Each pod's interfaces (kubectl exec ... ip addr) and network-status")
	pods := demoPods(t, c)
	for _, p := range pods {
		fmt.Printf("\npod %s:\n", p.name)
		show(addresses(c.MustExec(t, "demo", p.name, "ip", "-4", "-o", "addr", "show")))
		fmt.Printf("network-status: %s\n", p.status)
	}

	fmt.Println("\nbackend's addresses are multinet-ipam's: the block this node claimed (kubectl get ipblocks)")
	show(c.RunKubectl(t, "get", "ipblocks"))

	say("6/9 Ping between pods over each secondary network (net1: storage, net2: backend)")
	from := pods[0]
	for _, to := range pods[1:] {
		for _, ifname := range []string{"net1", "net2"} {
			out := c.MustExec(t, "demo", from.name, "ping", "-c", "2", "-W", "2", "-I", ifname, to.ips[ifname])
			fmt.Printf("%s -> %s %s (%s): %s\n", from.name, to.name, ifname, to.ips[ifname], pingSummary(out))
		}
	}
	if out, err := c.Exec(t, "demo", from.name, "ping", "-c", "1", "-W", "1", "192.0.2.1"); err == nil {
		t.Fatalf("a pod reached an address outside the test networks:\n%s", out)
	}
	fmt.Println("and no route out: a ping to an address outside the test networks fails, as it must")

	say("7/9 Hot unplug: kubectl annotate pods -l app=web --overwrite k8s.v1.cni.cncf.io/networks=storage")
	c.RunKubectl(t, "-n", "demo", "annotate", "pods", "-l", "app=web", "--overwrite", "k8s.v1.cni.cncf.io/networks=storage")
	showInterfaces(t, c, from.name, "net2", false)

	say("8/9 Hot plug: the same with storage,backend: net2 comes back, no restart")
	c.RunKubectl(t, "-n", "demo", "annotate", "pods", "-l", "app=web", "--overwrite", "k8s.v1.cni.cncf.io/networks=storage,backend")
	showInterfaces(t, c, from.name, "net2", true)
	for _, line := range strings.Split(c.PodEvents(t, "demo", from.name), "\n") {
		if strings.Contains(line, "Plugged") || strings.Contains(line, "Unplugged") {
			fmt.Println("event:", strings.Join(strings.Fields(line), " "))
		}
	}

	say("9/9 MultiNetworkPolicy on storage only: web pods accept storage traffic from trusted=true pods (kubectl apply -f test/e2e/demo/policy.yaml)")
	demoPolicy(t, c)

	say("Their state, as an operator sees it: kubectl multinet status -n demo -o wide (the kubectl plugin, bin/kubectl-multinet; POLICIES: the MultiNetworkPolicies selecting each interface)")
	show(kubectlPlugin(t, c, "multinet", "status", "-n", "demo", "-o", "wide"))

	say("Cleaning up: kubectl delete the Deployment, then the node is torn down and the host restored")
	show(c.RunKubectl(t, "delete", "-f", "demo/deployment.yaml", "--wait=true"))
	t.Cleanup(func() {
		if !t.Failed() {
			fmt.Printf("\n%s\n\n", demoSuccess)
		}
	})
}

// demoPolicy labels the second pod trusted, applies the policy, and shows that the second pod
// reaches the first over storage (net1) while the third does not, and that backend (net2) is
// not filtered. The pods are read again: the hot plug gave them a new net2.
func demoPolicy(t *testing.T, c *testbed.Cluster) {
	t.Helper()
	pods := settledDemoPods(t, c)
	to, trusted, other := pods[0], pods[1], pods[2]
	c.RunKubectl(t, "-n", "demo", "label", "pod", trusted.name, "trusted=true")
	show := func(out string) { fmt.Println(strings.TrimRight(out, "\n")) }
	show(c.RunKubectl(t, "apply", "-f", "demo/policy.yaml"))
	ping := func(from demoPod, ifname string) error {
		_, err := c.Exec(t, "demo", from.name, "ping", "-c", "1", "-W", "1", "-I", ifname, to.ips[ifname])
		return err
	}
	// The policy reaches multinetd through its watch: wait until the other pod is kept out.
	deadline := time.Now().Add(time.Minute)
	for ping(other, "net1") == nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s still reaches %s over storage a minute after the policy", other.name, to.name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, row := range []struct {
		from   demoPod
		ifname string
		want   bool
	}{{trusted, "net1", true}, {other, "net1", false}, {other, "net2", true}} {
		err := ping(row.from, row.ifname)
		fmt.Printf("%s -> %s %s (%s): reached=%v\n", row.from.name, to.name, row.ifname, to.ips[row.ifname], err == nil)
		if (err == nil) != row.want {
			t.Fatalf("%s -> %s over %s: reached=%v, want %v", row.from.name, to.name, row.ifname, err == nil, row.want)
		}
	}
}

// showInterfaces waits until the pod has ifname (or has not), then prints its addresses.
func showInterfaces(t *testing.T, c *testbed.Cluster, pod, ifname string, present bool) {
	t.Helper()
	var out string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out = c.MustExec(t, "demo", pod, "ip", "-4", "-o", "addr", "show")
		if strings.Contains(out, " "+ifname+" ") == present {
			fmt.Printf("pod %s:\n%s\n", pod, addresses(out))
			return
		}
	}
	t.Fatalf("pod %s: %s present=%v never reached:\n%s", pod, ifname, present, out)
}

// kubectlPlugin runs kubectl with multinet's binaries first on PATH, so `kubectl multinet`
// finds the plugin as it does on an operator's machine.
func kubectlPlugin(t *testing.T, c *testbed.Cluster, args ...string) string {
	t.Helper()
	// kubectl takes no flag before a plugin's name: --kubeconfig goes last, to the plugin.
	cmd := exec.CommandContext(t.Context(), c.Kubectl, append(args, "--kubeconfig", c.Kubeconfig)...)
	cmd.Env = append(os.Environ(), "PATH="+testbed.Binaries(t)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// addresses turns `ip -4 -o addr show` into "  eth0   10.244.0.3/24" lines, loopback left out.
func addresses(out string) string {
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line) // 2: eth0    inet 10.244.0.3/24 brd ... \ valid_lft ...
		if len(f) >= 4 && f[2] == "inet" && f[1] != "lo" {
			lines = append(lines, fmt.Sprintf("  %-6s %s", f[1], f[3]))
		}
	}
	return strings.Join(lines, "\n")
}

// demoPod is one pod of the demo with its secondary addresses.
type demoPod struct {
	name, status string
	ips          map[string]string // by interface
}

// demoPods reads the Deployment's pods and their network-status.
func demoPods(t *testing.T, c *testbed.Cluster) []demoPod {
	t.Helper()
	pods, err := readDemoPods(t, c)
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

// settledDemoPods is demoPods once every pod's network-status lists its three interfaces
// again (after a hot plug, each pod's comes in its own time), waiting up to a minute.
func settledDemoPods(t *testing.T, c *testbed.Cluster) []demoPod {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		pods, err := readDemoPods(t, c)
		if err == nil {
			return pods
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readDemoPods reads the Deployment's pods and their network-status; an error says which pod
// has not three entries.
func readDemoPods(t *testing.T, c *testbed.Cluster) ([]demoPod, error) {
	t.Helper()
	list, err := c.Client.CoreV1().Pods("demo").List(t.Context(), metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		return nil, err
	}
	var pods []demoPod
	for _, p := range list.Items {
		raw := p.Annotations[nadv1.NetworkStatusAnnot]
		var st []nadv1.NetworkStatus
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			return nil, fmt.Errorf("pod %s network-status %q: %w", p.Name, raw, err)
		}
		if len(st) != 3 {
			return nil, fmt.Errorf("pod %s network-status %q: %d entries, want 3", p.Name, raw, len(st))
		}
		d := demoPod{name: p.Name, status: raw, ips: map[string]string{}}
		for _, s := range st {
			if len(s.IPs) > 0 {
				d.ips[s.Interface] = s.IPs[0]
			}
		}
		pods = append(pods, d)
	}
	if len(pods) != 3 {
		return nil, fmt.Errorf("%d pods, want 3", len(pods))
	}
	slices.SortFunc(pods, func(a, b demoPod) int { return strings.Compare(a.name, b.name) })
	return pods, nil
}

// pingSummary is ping's "N packets transmitted, M received" line.
func pingSummary(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "packets transmitted") {
			return strings.TrimSpace(line)
		}
	}
	return strings.TrimSpace(out)
}
