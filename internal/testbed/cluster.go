package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// ClusterRoot is the fixed directory of the one real node the machine runs at a time
// (kubelet, containerd and the node's CNI dirs). Fixed rather than a temp dir because
// deploy/testbed mounts the node's directories by path and the kubelet's container log dir is
// a build-time constant (hack/tools.sh). StartCluster removes it at teardown.
const ClusterRoot = "/var/lib/multinet-testbed"

// Paths of the node under ClusterRoot.
var (
	ClusterCNIConfDir = filepath.Join(ClusterRoot, "cni", "net.d")
	ClusterCNIBinDir  = filepath.Join(ClusterRoot, "cni", "bin")
	// ClusterNetnsDir holds the pods' netns files (containerd's netns_mounts_under_state_dir).
	ClusterNetnsDir = filepath.Join(ClusterRoot, "containerd", "state", "io.containerd.grpc.v1.cri", "netns")
)

// ClusterNodeName is the name of the cluster's only node.
const ClusterNodeName = "testbed-node"

// ClusterBridge is the cluster default network's bridge, and ClusterSubnet its pod subnet: a
// test range, no gateway, no NAT, so pods reach only each other on it. Every link named
// "mnt-*" belongs to the test bed: teardown deletes them (tests name their bridges so).
const (
	ClusterBridge  = "mnt-cluster0"
	ClusterSubnet  = "10.244.0.0/24"
	clusterNetName = "testbed-cluster"
)

// Images of the test bed, imported into containerd (see hack/image).
const (
	PauseImage    = "localhost/multinet/pause:testbed"
	BusyboxImage  = "localhost/multinet/busybox:testbed"
	MultinetImage = "localhost/multinet/multinet:testbed"
)

// Cluster is one real Kubernetes node on this machine: etcd, kube-apiserver (RBAC and
// ServiceAccounts on), kube-controller-manager, kube-scheduler, containerd and a kubelet,
// with a bridge + host-local cluster network. Pods are real: containerd runs them and calls
// CNI. Only one Cluster runs on a machine at a time (a file lock serializes test binaries).
type Cluster struct {
	*ControlPlane
	NodeName string
	NodeIP   string
	Socket   string // containerd's socket
	Kubectl  string // path of kubectl

	dir          string // ClusterRoot
	tools        string
	runtime      string // containerd, its runc shim and ctr (hack/tools.sh containerd)
	runc         string // the host's runc, which containerd's shim runs
	host         *hostState
	kubeletPKI   *kubeletPKI
	kubeletCfg   string
	kubeletArgs  []string
	kubeletPort  int
	buildLdflags string // extra -ldflags of the next multinet build
	containerd   *process
	kubelet      *process
	controller   *process
	scheduler    *process
	logDir       string
}

// StartCluster starts the one-node cluster and waits until the node is Ready and the
// "default" ServiceAccount exists. Everything is torn down in t.Cleanup, leaving the host as
// it was (see teardown).
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	RequireRoot(t)
	start := time.Now()
	unlock, err := lockCluster()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(unlock)
	c := &Cluster{NodeName: ClusterNodeName, dir: ClusterRoot, tools: Tools(t, "kube"), runtime: Tools(t, "containerd")}
	if c.logDir, err = os.MkdirTemp("", "multinet-cluster-"); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(func() { // kept when the test failed, for the components' full logs
		if t.Failed() {
			t.Logf("testbed: cluster logs kept in %s", c.logDir)
			return
		}
		_ = os.RemoveAll(c.logDir)
	})
	c.Kubectl = filepath.Join(c.tools, "kubectl")
	if c.kubeletPKI, err = writeKubeletPKI(c.logDir); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	kubeletToken := randomToken()
	c.ControlPlane = StartControlPlane(t, WithRBAC(),
		WithToken(kubeletToken, "system:node:"+c.NodeName, "system:nodes"),
		func(o *options) {
			o.serviceAccounts = true
			o.extraArgs = append(o.extraArgs, "--kubelet-client-certificate="+c.kubeletPKI.clientCert,
				"--kubelet-client-key="+c.kubeletPKI.clientKey, "--kubelet-preferred-address-types=InternalIP")
		})
	if err := cleanStaleCluster(c.dir); err != nil {
		t.Fatalf("testbed: cleaning a previous cluster: %v", err)
	}
	if c.host, err = recordHost(c.dir); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(cleanupOnInterrupt(c.dir)) // runs after teardown: Ctrl-C during it is handled too
	t.Cleanup(func() { c.teardown(t) })
	c.mustStart(t, kubeletToken)
	t.Logf("testbed: cluster with node %s (%s) ready in %s", c.NodeName, c.NodeIP, time.Since(start).Round(time.Millisecond))
	return c
}

// mustStart brings up the node's parts in order, failing the test on the first error.
func (c *Cluster) mustStart(t testing.TB, kubeletToken string) {
	t.Helper()
	steps := []struct {
		name string
		run  func() error
	}{
		{"node dirs", c.prepareDirs},
		{"cluster network", func() error { return c.writeClusterNetwork(Tools(t, "cni")) }},
		{"kube-controller-manager", c.startControllerManager},
		{"kube-scheduler", c.startScheduler},
		{"containerd", c.startContainerd},
		{"images", func() error { return c.importBaseImages(t) }},
		{"kubelet", func() error { return c.startKubelet(t, kubeletToken) }},
		{"node ready", func() error { return c.waitNodeReady(t.Context()) }},
		{"default service account", func() error { return c.waitServiceAccount(t.Context(), "default") }},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.run(); err != nil {
			t.Fatalf("testbed: cluster %s: %v", s.name, err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Logf("testbed: cluster %s took %s", s.name, took.Round(time.Millisecond))
		}
	}
}

// prepareDirs creates the node's directories and makes ClusterRoot a shared mount, so that
// the netns files containerd mounts later reach containers that mount them with
// HostToContainer propagation (the host's / is private here).
func (c *Cluster) prepareDirs() error {
	for _, d := range []string{ClusterCNIConfDir, ClusterCNIBinDir, ClusterNetnsDir, filepath.Join(c.dir, "container-logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := run("mount", "--bind", c.dir, c.dir); err != nil {
		return err
	}
	return run("mount", "--make-rshared", c.dir)
}

// writeClusterNetwork copies the reference plugins into the node's CNI bin dir and writes
// the cluster default network: a bridge without gateway or NAT and host-local addresses.
func (c *Cluster) writeClusterNetwork(plugins string) error {
	entries, err := os.ReadDir(plugins)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := copyFile(filepath.Join(plugins, e.Name()), filepath.Join(ClusterCNIBinDir, e.Name()), 0o755); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[{"type":"bridge","bridge":%q,
  "isGateway":false,"ipMasq":false,"hairpinMode":false,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]]}},{"type":"loopback"}]}`, clusterNetName, ClusterBridge, ClusterSubnet)
	return os.WriteFile(filepath.Join(ClusterCNIConfDir, "10-testbed.conflist"), []byte(conf+"\n"), 0o644)
}

func (c *Cluster) startControllerManager() error {
	var err error
	c.controller, err = startProcess("kube-controller-manager", filepath.Join(c.tools, "kube-controller-manager"),
		filepath.Join(c.logDir, "kube-controller-manager.log"),
		"--kubeconfig="+c.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--service-account-private-key-file="+c.pki.saKeyFile,
		"--root-ca-file="+c.CAFile,
		"--use-service-account-credentials=false",
		// No node CIDRs. (1.32 needed -service-lb-controller,-route,-cloud-node-lifecycle too;
		// 1.37 has no cloud controllers and exits on names it does not know.)
		"--controllers=*,-nodeipam",
		"-v=1")
	return err
}

func (c *Cluster) startScheduler() error {
	var err error
	c.scheduler, err = startProcess("kube-scheduler", filepath.Join(c.tools, "kube-scheduler"),
		filepath.Join(c.logDir, "kube-scheduler.log"),
		"--kubeconfig="+c.Kubeconfig, "--leader-elect=false", "--secure-port=0", "-v=1")
	return err
}

// waitNodeReady waits until the node reports Ready.
func (c *Cluster) waitNodeReady(ctx context.Context) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if c.kubelet.exited() {
			return false, fmt.Errorf("kubelet exited\n%s", c.kubelet.logTail(30))
		}
		node, err := c.Client.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				last = cond.Message
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("node %s not ready (%s): %w\n%s", c.NodeName, last, err, c.kubelet.logTail(30))
	}
	return nil
}

// waitServiceAccount waits until the controller-manager created the ServiceAccount in the
// namespace (the ServiceAccount admission plugin refuses pods until then), failing at once,
// with its log, if the controller-manager exited (e.g. on a flag its version refuses).
func (c *Cluster) waitServiceAccount(ctx context.Context, namespace string) error {
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if c.controller != nil && c.controller.exited() {
			return false, fmt.Errorf("kube-controller-manager exited\n%s", c.controller.logTail(10))
		}
		_, err := c.Client.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// bindNode gives the kubelet's user the system:node role. The API server runs RBAC only (no
// Node authorizer), so the node's rights come from this binding.
func (c *Cluster) bindNode(ctx context.Context) error {
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "testbed-node"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:node"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "system:node:" + c.NodeName}},
	}
	_, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{})
	return err
}

// KubectlCmd returns kubectl with args, as the admin user of the cluster.
func (c *Cluster) KubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	return cmd
}

// RunKubectl runs kubectl and returns its output, failing the test when it fails.
func (c *Cluster) RunKubectl(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := c.KubectlCmd(ctx, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// run runs a host command, its output in the error.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// copyFile copies src to dst (replaced through a rename) with mode.
func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
