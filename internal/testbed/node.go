package testbed

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
)

// NodeName is the node every simulated pod is bound to.
const NodeName = "node-a"

var built struct {
	sync.Mutex
	dir string
}

// Binaries builds multinet's commands (cmd/...) once per process into bin/test/ of the
// clone (git ignores it), and returns that directory.
func Binaries(t testing.TB) string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	if built.dir != "" {
		return built.dir
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "bin", "test")
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/...")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testbed: go build ./cmd/...: %v\n%s", err, out)
	}
	built.dir = dir
	return dir
}

// Node is one simulated Kubernetes node: CNI dirs, a multinetd process, and the runtime's
// libcni invoking multinet's conflist as containerd does.
type Node struct {
	CP       *ControlPlane
	ID       string // short random suffix for link names
	Dir      string
	ConfDir  string
	BinDir   string
	StateDir string
	IPAMDir  string // host-local's dataDir for every network of this node
	Socket   string
	daemon   *exec.Cmd
	exited   chan struct{}
	Runtime  *libcni.CNIConfig
}

// RandomID is a short random hex string for unique link and object names.
func RandomID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewNode prepares the node's dirs, the cluster network conf and starts multinetd.
func NewNode(t testing.TB, cp *ControlPlane, extraFlags ...string) *Node {
	t.Helper()
	RequireRoot(t)
	dir := t.TempDir()
	n := &Node{CP: cp, ID: RandomID(), Dir: dir, ConfDir: filepath.Join(dir, "net.d"), BinDir: filepath.Join(dir, "bin"),
		StateDir: filepath.Join(dir, "state"), IPAMDir: filepath.Join(dir, "ipam"), Socket: filepath.Join(dir, "multinet.sock")}
	for _, d := range []string{n.ConfDir, n.BinDir, n.IPAMDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	plugins := Tools(t, "cni")
	entries, err := os.ReadDir(plugins)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(plugins, e.Name()), filepath.Join(n.BinDir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	cluster := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"cluster","plugins":[{"type":"bridge","bridge":"mnc%s",
		"isGateway":false,"ipMasq":false,"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.244.0.0/16"}]]}}]}`, n.ID, n.IPAMDir)
	WriteFile(t, filepath.Join(n.ConfDir, "10-cluster.conflist"), cluster)
	n.Runtime = libcni.NewCNIConfigWithCacheDir([]string{n.BinDir}, filepath.Join(dir, "runtime-cache"), nil)
	t.Cleanup(func() { DeleteLink("mnc" + n.ID) })
	n.Start(t, extraFlags...)
	return n
}

// WriteFile writes a test file or fails the test.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Start runs multinetd and waits for its conflist (written once it is ready).
func (n *Node) Start(t testing.TB, extraFlags ...string) {
	t.Helper()
	n.start(t, extraFlags...)
	n.waitFor(t, "ready", func() bool {
		_, err := os.Stat(filepath.Join(n.ConfDir, "00-multinet.conflist"))
		return err == nil && n.serving()
	})
}

// StartServing runs multinetd and waits for its socket only: a daemon whose caches cannot
// fill (API server down) serves DEL at once, but is not ready and writes no conflist.
func (n *Node) StartServing(t testing.TB, extraFlags ...string) {
	t.Helper()
	n.start(t, extraFlags...)
	n.waitFor(t, "serving", n.serving)
}

func (n *Node) start(t testing.TB, extraFlags ...string) {
	t.Helper()
	bins := Binaries(t)
	logf, err := os.OpenFile(filepath.Join(n.Dir, "multinetd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--kubeconfig", n.CP.Kubeconfig, "--node-name", NodeName,
		"--cni-conf-dir", n.ConfDir, "--cni-bin-dir", n.BinDir, "--socket", n.Socket,
		"--state-dir", n.StateDir, "--shim-source", filepath.Join(bins, "multinet"),
		"--metrics-address", "", "--global-namespaces", "global", "--log-level", "debug"}, extraFlags...)
	cmd := exec.Command(filepath.Join(bins, "multinetd"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// No Pdeathsig: it fires when the starting *thread* exits, and netns helpers end threads.
	// Its own process group, so KillGroup9 takes the delegate plugins it runs with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.daemon, n.exited = cmd, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); logf.Close(); close(done) }(cmd, n.exited)
	t.Cleanup(func() { n.Stop() })
}

// serving reports whether multinetd accepts connections on its socket.
func (n *Node) serving() bool {
	c, err := net.Dial("unix", n.Socket)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitFor polls cond for 30 s; multinetd exiting meanwhile fails the test.
func (n *Node) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case <-n.exited:
			t.Fatalf("multinetd exited during start:\n%s", n.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("multinetd not %s in 30s:\n%s", what, n.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends multinetd (SIGTERM) and waits.
func (n *Node) Stop() {
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

// Kill9 kills multinetd at once, as a crash or an OOM kill would.
func (n *Node) Kill9() {
	_ = n.daemon.Process.Kill()
	<-n.exited
	n.daemon = nil
}

// KillGroup9 kills multinetd and every plugin process it is running at once, as a node
// crash would: a delegate call in flight never completes.
func (n *Node) KillGroup9() {
	_ = syscall.Kill(-n.daemon.Process.Pid, syscall.SIGKILL)
	<-n.exited
	n.daemon = nil
}

func (n *Node) Log() string {
	data, _ := os.ReadFile(filepath.Join(n.Dir, "multinetd.log"))
	lines := strings.Split(string(data), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return strings.Join(lines, "\n")
}

// Sandbox is a pod sandbox: the pod object and its network namespace.
type Sandbox struct {
	Pod   *corev1.Pod
	Netns ns.NetNS
	ID    string
}

// NewSandbox creates the pod in the API and a netns for it.
func (n *Node) NewSandbox(t testing.TB, namespace, name string, annotations map[string]string) *Sandbox {
	t.Helper()
	pod := n.CP.CreatePod(t, namespace, name, NodeName, annotations)
	return &Sandbox{Pod: pod, Netns: NewNetNS(t), ID: "c" + RandomID() + RandomID()}
}

func (n *Node) RuntimeConf(sb *Sandbox) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: sb.ID, NetNS: sb.Netns.Path(), IfName: "eth0", Args: [][2]string{
		{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", sb.Pod.Namespace}, {"K8S_POD_NAME", sb.Pod.Name},
		{"K8S_POD_INFRA_CONTAINER_ID", sb.ID}, {"K8S_POD_UID", string(sb.Pod.UID)}}}
}

func (n *Node) Conflist(t testing.TB) *libcni.NetworkConfigList {
	t.Helper()
	list, err := libcni.ConfListFromFile(filepath.Join(n.ConfDir, "00-multinet.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// Ctx is a context for one CNI or API call of a test.
func Ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// Add runs CNI ADD for the sandbox as containerd would.
func (n *Node) Add(t testing.TB, sb *Sandbox) (types.Result, error) {
	t.Helper()
	return n.Runtime.AddNetworkList(Ctx(t), n.Conflist(t), n.RuntimeConf(sb))
}

func (n *Node) MustAdd(t testing.TB, sb *Sandbox) types.Result {
	t.Helper()
	res, err := n.Add(t, sb)
	if err != nil {
		t.Fatalf("ADD pod %s/%s: %v\ndaemon log:\n%s", sb.Pod.Namespace, sb.Pod.Name, err, n.Log())
	}
	return res
}

func (n *Node) Del(t testing.TB, sb *Sandbox) error {
	t.Helper()
	return n.Runtime.DelNetworkList(Ctx(t), n.Conflist(t), n.RuntimeConf(sb))
}

func (n *Node) MustDel(t testing.TB, sb *Sandbox) {
	t.Helper()
	if err := n.Del(t, sb); err != nil {
		t.Fatalf("DEL pod %s/%s: %v\ndaemon log:\n%s", sb.Pod.Namespace, sb.Pod.Name, err, n.Log())
	}
}

func (n *Node) Check(t testing.TB, sb *Sandbox) error {
	t.Helper()
	return n.Runtime.CheckNetworkList(Ctx(t), n.Conflist(t), n.RuntimeConf(sb))
}

// DeleteLink removes a host link, ignoring "not found".
func DeleteLink(name string) {
	_ = exec.Command("ip", "link", "del", name).Run()
}

// PID is multinetd's process ID (0 when it is not running).
func (n *Node) PID() int {
	if n.daemon == nil {
		return 0
	}
	return n.daemon.Process.Pid
}
