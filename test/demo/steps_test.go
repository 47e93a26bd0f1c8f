package demo

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/testbed"
)

const (
	namespace          = "demo"
	networksAnnotation = "k8s.v1.cni.cncf.io/networks"
	statusAnnotation   = "k8s.v1.cni.cncf.io/network-status"
)

// demo is the state the steps share.
type demo struct {
	t    testing.TB
	cp   *testbed.ControlPlane
	node *testbed.Node
	pods []*pod
}

// pod is one demo pod: what it asks for, what it should get, and what it got.
type pod struct {
	name       string
	annotation string            // k8s.v1.cni.cncf.io/networks
	want       map[string]string // secondary network -> expected interface in the pod
	sb         *testbed.Sandbox
	ips        map[string]net.IP // secondary network -> the pod's address on it
}

func (d *demo) storageBridge() string   { return "mns" + d.node.ID }
func (d *demo) telemetryMaster() string { return "mnt" + d.node.ID }
func (d *demo) clusterBridge() string   { return "mnc" + d.node.ID }

// startNode is step 1: the control plane, the node, and the conflists the runtime sees.
func (d *demo) startNode() {
	t := d.t
	d.step(1, "Start a control plane and a node running multinetd")
	say("Starting etcd and kube-apiserver on 127.0.0.1 (this may take a few seconds;")
	say("their binaries and the reference CNI plugins were built by `make tools`)...")
	start := time.Now()
	d.cp = testbed.StartControlPlane(t)
	say("kube-apiserver is ready at %s (%.1fs).", d.cp.URL, time.Since(start).Seconds())
	d.node = testbed.NewNode(t, d.cp)
	say("Node %q is up: multinetd runs as a process (socket %s).", testbed.NodeName, d.node.Socket)
	say("Once ready, multinetd installed the shim in the CNI bin dir and wrote multinet's conflist.")
	say("The runtime (containerd) uses the first conflist of %s, so every pod now goes through multinet:", d.node.ConfDir)
	d.cat(filepath.Join(d.node.ConfDir, "00-multinet.conflist"))
	list := d.node.Conflist(t)
	if len(list.Plugins) != 1 || list.Plugins[0].Network.Type != "multinet" {
		t.Fatalf("multinet's conflist should hold exactly one plugin of type multinet; it holds %d plugins", len(list.Plugins))
	}
	say("multinet delegates each pod's eth0 to the cluster (default) network, whose conf is unchanged:")
	d.cat(filepath.Join(d.node.ConfDir, "10-cluster.conflist"))
}

// cat prints a JSON config file (indented).
func (d *demo) cat(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		d.t.Fatalf("cannot read %s: %v", path, err)
	}
	show("$ cat "+path, indentJSON(data))
}

// createNetworks is step 2: a bridge and a macvlan NetworkAttachmentDefinition.
func (d *demo) createNetworks() {
	t := d.t
	d.step(2, "Create two secondary networks (NetworkAttachmentDefinitions) in namespace "+namespace)
	d.cp.CreateNamespace(t, namespace)
	t.Cleanup(func() { testbed.DeleteLink(d.storageBridge()) }) // the bridge plugin creates it at the first ADD
	d.hostBridge(d.telemetryMaster())
	say("Created host bridge %s to stand for the NIC macvlan sits on (its \"master\").", d.telemetryMaster())
	ipam := func(subnet string) string {
		return fmt.Sprintf(`{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]]}`, d.node.IPAMDir, subnet)
	}
	d.cp.CreateNAD(t, namespace, "storage", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"storage","type":"bridge",
		"bridge":%q,"isGateway":false,"ipMasq":false,"ipam":%s}`, d.storageBridge(), ipam("10.20.1.0/24")))
	d.cp.CreateNAD(t, namespace, "telemetry", fmt.Sprintf(`{"cniVersion":"0.4.0","name":"telemetry","type":"macvlan",
		"master":%q,"mode":"bridge","ipam":%s}`, d.telemetryMaster(), ipam("10.20.2.0/24")))
	for _, name := range []string{"storage", "telemetry"} {
		nad, err := d.cp.NADClient.K8sCniCncfIoV1().NetworkAttachmentDefinitions(namespace).Get(testbed.Ctx(t), name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the NetworkAttachmentDefinition %s/%s was created but cannot be read back: %v", namespace, name, err)
		}
		show(fmt.Sprintf("NetworkAttachmentDefinition %s/%s, spec.config as stored in the API:", namespace, name),
			indentJSON([]byte(nad.Spec.Config)))
	}
}

// hostBridge creates an up bridge on the host, removed in t.Cleanup.
func (d *demo) hostBridge(name string) {
	t := d.t
	t.Cleanup(func() { testbed.DeleteLink(name) })
	for _, args := range [][]string{{"link", "add", name, "type", "bridge"}, {"link", "set", name, "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("cannot create host bridge %s (ip %s): %v %s", name, strings.Join(args, " "), err, out)
		}
	}
}

// attachPods is step 3: three annotated pods, each attached through the runtime's CNI path.
func (d *demo) attachPods() {
	d.step(3, "Create three annotated pods and attach them as the runtime does (CNI ADD)")
	d.pods = []*pod{
		{name: "web", annotation: "storage", want: map[string]string{"storage": "net1"}},
		{name: "db", annotation: `[{"name":"storage","interface":"stor0"},{"name":"telemetry"}]`,
			want: map[string]string{"storage": "stor0", "telemetry": "net1"}},
		{name: "probe", annotation: "storage,telemetry", want: map[string]string{"storage": "net1", "telemetry": "net2"}},
	}
	for _, p := range d.pods {
		d.attach(p)
	}
}

// attach creates one pod and its netns, runs CNI ADD and shows and checks the result.
func (d *demo) attach(p *pod) {
	t := d.t
	fmt.Printf("\n    --- pod %s/%s, annotation %s: %s\n", namespace, p.name, networksAnnotation, p.annotation)
	p.sb = d.node.NewSandbox(t, namespace, p.name, map[string]string{networksAnnotation: p.annotation})
	if _, err := d.node.Add(t, p.sb); err != nil {
		t.Fatalf("CNI ADD of pod %s failed, so a real runtime could not start it: %v\nmultinetd's log (last lines):\n%s",
			p.name, err, d.node.Log())
	}
	cmd := exec.Command("nsenter", "--net="+p.sb.Netns.Path(), "ip", "-br", "addr")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cannot list the addresses in pod %s's network namespace: %v %s", p.name, err, out)
	}
	show("$ "+strings.Join(cmd.Args, " "), string(out))
	wantLinks := append([]string{"eth0"}, slices.Collect(maps.Values(p.want))...)
	slices.Sort(wantLinks)
	if got := testbed.Links(t, p.sb.Netns); !slices.Equal(got, wantLinks) {
		t.Fatalf("pod %s has interfaces %v; expected %v (eth0 for the cluster network plus one per requested network)",
			p.name, got, wantLinks)
	}
	d.checkStatus(p, len(wantLinks))
}

// checkStatus shows the pod's network-status annotation and checks it against the netns.
func (d *demo) checkStatus(p *pod, entries int) {
	t := d.t
	st := d.node.NetworkStatus(t, p.sb, entries)
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	show(statusAnnotation+":", string(raw))
	if st[0].Name != "cluster" || !st[0].Default || st[0].Interface != "eth0" {
		t.Fatalf("pod %s: the first network-status entry should be the default cluster network on eth0, got %+v", p.name, st[0])
	}
	p.ips = map[string]net.IP{}
	for _, s := range st[1:] {
		network := strings.TrimPrefix(s.Name, namespace+"/")
		if p.want[network] != s.Interface || len(s.IPs) != 1 {
			t.Fatalf("pod %s: network-status entry %+v; expected network %s/%s on %s with one address",
				p.name, s, namespace, network, p.want[network])
		}
		if got := testbed.IPv4(t, p.sb.Netns, s.Interface); got.String() != s.IPs[0] {
			t.Fatalf("pod %s: network-status says %s has %s, but the interface has %s", p.name, s.Interface, s.IPs[0], got)
		}
		p.ips[network] = net.ParseIP(s.IPs[0])
	}
}

// pingPods is step 4: real ICMP between the pods over each secondary network.
func (d *demo) pingPods() {
	d.step(4, "Send real ICMP between the pods over each secondary network")
	d.pingMesh("storage", "web", "db", "probe")
	d.pingMesh("telemetry", "db", "probe")
}

// pingMesh pings from every named pod to every other one over network.
func (d *demo) pingMesh(network string, names ...string) {
	t := d.t
	for _, from := range names {
		for _, to := range names {
			if from == to {
				continue
			}
			src, dst := d.pod(from), d.pod(to)
			if err := testbed.Ping(t, src.sb.Netns, dst.ips[network]); err != nil {
				t.Fatalf("pod %s cannot reach pod %s over the %s network: %v", from, to, network, err)
			}
			say("%-9s  %-5s %-5s %-9s ->  %-5s %-5s %-9s  ping OK", network, from, src.want[network], src.ips[network],
				to, dst.want[network], dst.ips[network])
		}
	}
}

func (d *demo) pod(name string) *pod {
	for _, p := range d.pods {
		if p.name == name {
			return p
		}
	}
	d.t.Fatalf("no pod %s in the demo", name)
	return nil
}
