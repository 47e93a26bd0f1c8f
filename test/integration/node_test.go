// Package integration drives multinet as a node runs it: a real kube-apiserver and etcd, the
// multinetd daemon as a real process, the shim invoked through libcni exactly as containerd
// invokes the conflist multinetd writes, real reference CNI plugins, and pods as network
// namespaces. These tests need root.
package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"

	"github.com/multinet/multinet/internal/testbed"
)

const nodeName = "node-a"

var built struct {
	once sync.Once
	dir  string
	err  error
}

// binaries builds multinet and multinetd once per test process.
func binaries(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "multinet-bin-")
		if built.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", built.dir+"/", "../../cmd/multinet", "../../cmd/multinetd")
		out, err := cmd.CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// node is one simulated Kubernetes node: CNI dirs, multinetd, and the runtime's libcni.
type node struct {
	cp       *testbed.ControlPlane
	id       string // short random suffix for link names
	dir      string
	confDir  string
	binDir   string
	stateDir string
	ipamDir  string // host-local's dataDir for every network of this node
	socket   string
	daemon   *exec.Cmd
	exited   chan struct{}
	runtime  *libcni.CNIConfig
}

func randomID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newNode prepares the node's dirs, the cluster network conf and starts multinetd.
func newNode(t *testing.T, cp *testbed.ControlPlane, extraFlags ...string) *node {
	t.Helper()
	testbed.RequireRoot(t)
	dir := t.TempDir()
	n := &node{cp: cp, id: randomID(), dir: dir, confDir: filepath.Join(dir, "net.d"), binDir: filepath.Join(dir, "bin"),
		stateDir: filepath.Join(dir, "state"), ipamDir: filepath.Join(dir, "ipam"), socket: filepath.Join(dir, "multinet.sock")}
	for _, d := range []string{n.confDir, n.binDir, n.ipamDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	plugins := testbed.Tools(t, "cni")
	entries, err := os.ReadDir(plugins)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(plugins, e.Name()), filepath.Join(n.binDir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	cluster := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"cluster","plugins":[{"type":"bridge","bridge":"mnc%s",
		"isGateway":false,"ipMasq":false,"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.244.0.0/24"}]]}}]}`, n.id, n.ipamDir)
	writeFile(t, filepath.Join(n.confDir, "10-cluster.conflist"), cluster)
	n.runtime = libcni.NewCNIConfigWithCacheDir([]string{n.binDir}, filepath.Join(dir, "runtime-cache"), nil)
	t.Cleanup(func() { deleteLink("mnc" + n.id) })
	n.start(t, extraFlags...)
	return n
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs multinetd and waits for its conflist (written once it is ready).
func (n *node) start(t *testing.T, extraFlags ...string) {
	t.Helper()
	bins := binaries(t)
	logf, err := os.OpenFile(filepath.Join(n.dir, "multinetd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--kubeconfig", n.cp.Kubeconfig, "--node-name", nodeName,
		"--cni-conf-dir", n.confDir, "--cni-bin-dir", n.binDir, "--socket", n.socket,
		"--state-dir", n.stateDir, "--shim-source", filepath.Join(bins, "multinet"),
		"--metrics-address", "", "--global-namespaces", "global", "--log-level", "debug"}, extraFlags...)
	cmd := exec.Command(filepath.Join(bins, "multinetd"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// No Pdeathsig: it fires when the starting *thread* exits, and netns helpers end threads.
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.daemon, n.exited = cmd, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); logf.Close(); close(done) }(cmd, n.exited)
	t.Cleanup(func() { n.stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(n.confDir, "00-multinet.conflist")); err == nil {
			if c, err := net.Dial("unix", n.socket); err == nil {
				c.Close()
				return
			}
		}
		select {
		case <-n.exited:
			t.Fatalf("multinetd exited during start:\n%s", n.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("multinetd not ready in 30s:\n%s", n.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends multinetd (SIGTERM) and waits.
func (n *node) stop() {
	if n.daemon == nil {
		return
	}
	_ = n.daemon.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		_ = n.daemon.Process.Kill()
		<-n.exited
	}
	n.daemon = nil
}

// kill9 kills multinetd at once, as a crash or an OOM kill would.
func (n *node) kill9() {
	_ = n.daemon.Process.Kill()
	<-n.exited
	n.daemon = nil
}

func (n *node) log() string {
	data, _ := os.ReadFile(filepath.Join(n.dir, "multinetd.log"))
	lines := strings.Split(string(data), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return strings.Join(lines, "\n")
}

// sandbox is a pod sandbox: the pod object and its network namespace.
type sandbox struct {
	pod   *corev1.Pod
	netns ns.NetNS
	id    string
}

// newSandbox creates the pod in the API and a netns for it.
func (n *node) newSandbox(t *testing.T, namespace, name string, annotations map[string]string) *sandbox {
	t.Helper()
	pod := n.cp.CreatePod(t, namespace, name, nodeName, annotations)
	return &sandbox{pod: pod, netns: testbed.NewNetNS(t), id: "c" + randomID() + randomID()}
}

func (n *node) rt(sb *sandbox) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: sb.id, NetNS: sb.netns.Path(), IfName: "eth0", Args: [][2]string{
		{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", sb.pod.Namespace}, {"K8S_POD_NAME", sb.pod.Name},
		{"K8S_POD_INFRA_CONTAINER_ID", sb.id}, {"K8S_POD_UID", string(sb.pod.UID)}}}
}

func (n *node) conflist(t testing.TB) *libcni.NetworkConfigList {
	t.Helper()
	list, err := libcni.ConfListFromFile(filepath.Join(n.confDir, "00-multinet.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// add runs CNI ADD for the sandbox as containerd would.
func (n *node) add(t *testing.T, sb *sandbox) (types.Result, error) {
	t.Helper()
	return n.runtime.AddNetworkList(ctx(t), n.conflist(t), n.rt(sb))
}

func (n *node) mustAdd(t *testing.T, sb *sandbox) types.Result {
	t.Helper()
	res, err := n.add(t, sb)
	if err != nil {
		t.Fatalf("ADD pod %s/%s: %v\ndaemon log:\n%s", sb.pod.Namespace, sb.pod.Name, err, n.log())
	}
	return res
}

func (n *node) del(t *testing.T, sb *sandbox) error {
	t.Helper()
	return n.runtime.DelNetworkList(ctx(t), n.conflist(t), n.rt(sb))
}

func (n *node) mustDel(t *testing.T, sb *sandbox) {
	t.Helper()
	if err := n.del(t, sb); err != nil {
		t.Fatalf("DEL pod %s/%s: %v\ndaemon log:\n%s", sb.pod.Namespace, sb.pod.Name, err, n.log())
	}
}

func (n *node) check(t *testing.T, sb *sandbox) error {
	t.Helper()
	return n.runtime.CheckNetworkList(ctx(t), n.conflist(t), n.rt(sb))
}

func deleteLink(name string) {
	_ = exec.Command("ip", "link", "del", name).Run()
}
