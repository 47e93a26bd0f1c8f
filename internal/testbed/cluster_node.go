package testbed

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// containerdConfig is containerd 2.4's config (version 4): its own root, state, sockets,
// shim socket dir and runc state dir, so that nothing goes under /run/containerd; NRI off
// (else it listens on /var/run/nri/nri.sock); images unpacked for the native snapshotter by
// the transfer service too (ctr images import goes through it); the CRI plugins with the node's CNI dirs, the
// native snapshotter, runc with cgroupfs, and the settings this kind of machine needs
// (shared/REAL-NODE.md): restrict_oom_score_adj (no CAP_SYS_RESOURCE), no AppArmor, netns
// files under the state dir. The shim is named by path: containerd would take the first
// containerd-shim-runc-v2 on PATH (Debian's containerd package installs a 1.6 one).
const containerdConfig = `version = 4
root = "{{root}}/containerd/root"
state = "{{root}}/containerd/state"
imports = []

[debug]
  level = "info"

[plugins."io.containerd.server.v1.grpc"]
  address = "{{root}}/containerd/containerd.sock"

[plugins."io.containerd.server.v1.ttrpc"]
  address = "{{root}}/containerd/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{{root}}/containerd/opt"

[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "{{root}}/containerd/s"

[plugins."io.containerd.nri.v1.nri"]
  disable = true

[plugins."io.containerd.transfer.v1.local"]
  [[plugins."io.containerd.transfer.v1.local".unpack_config]]
    platform = "{{platform}}"
    snapshotter = "native"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "native"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{{pause}}"

[plugins."io.containerd.cri.v1.runtime"]
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = "{{shim}}"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{{runc}}"
        Root = "{{root}}/containerd/state/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{{bindir}}"]
    conf_dir = "{{confdir}}"
    max_conf_num = 1
`

// kubeletConfig is the KubeletConfiguration: cgroupfs without QoS cgroups (cgroup v1, no
// systemd), no iptables chains, its files under ClusterRoot, webhook authn/z for the API
// server's exec and logs (client certificate of kubeletPKI). failCgroupV1: false lets the
// kubelet start on a cgroup v1 host (these machines boot cgroup v1): it defaults to true
// since the kubelet deprecated cgroup v1 (false in 1.32, true in the pinned 1.37, which then
// exits with "kubelet is configured to not run on a host using cgroup v1"); 1.37 needs no
// further gate or flag for cgroup v1 and only logs a deprecation warning.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://{{root}}/containerd/containerd.sock
podLogsDir: {{root}}/pod-logs
volumePluginDir: {{root}}/volume-plugins
makeIPTablesUtilChains: false
address: {{nodeip}}
port: {{port}}
readOnlyPort: 0
healthzPort: 0
serializeImagePulls: false
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 5s
imageGCHighThresholdPercent: 100
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: {{clientca}}
authorization:
  mode: Webhook
`

func expand(tmpl string, vars map[string]string) string {
	for k, v := range vars {
		tmpl = strings.ReplaceAll(tmpl, "{{"+k+"}}", v)
	}
	return tmpl
}

// startContainerd writes the config and starts containerd (hack/tools.sh's build), waiting
// for its socket. runc is the host's (hack/deps.sh).
func (c *Cluster) startContainerd() error {
	var err error
	if c.runc, err = exec.LookPath("runc"); err != nil {
		return fmt.Errorf("runc (hack/deps.sh installs it): %w", err)
	}
	c.Socket = filepath.Join(c.dir, "containerd", "containerd.sock")
	cfg := filepath.Join(c.dir, "containerd.toml")
	data := expand(containerdConfig, map[string]string{"root": c.dir, "pause": PauseImage,
		"shim": filepath.Join(c.runtime, "containerd-shim-runc-v2"), "runc": c.runc, "platform": runtime.GOOS + "/" + runtime.GOARCH,
		"bindir": ClusterCNIBinDir, "confdir": ClusterCNIConfDir})
	if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
		return err
	}
	c.containerd, err = startProcess("containerd", filepath.Join(c.runtime, "containerd"), c.ContainerdLog(), "--config", cfg)
	if err != nil {
		return err
	}
	return waitReady(c.containerd, startTimeout, func() error {
		return exec.Command(filepath.Join(c.runtime, "ctr"), "-a", c.Socket, "version").Run()
	})
}

// ContainerdLog is the path of containerd's log (appended to across restarts).
func (c *Cluster) ContainerdLog() string { return filepath.Join(c.logDir, "containerd.log") }

// StopContainerd kills containerd (its shims and the pods keep running, as on a node).
func (c *Cluster) StopContainerd() {
	if c.containerd != nil {
		c.containerd.kill()
		c.containerd = nil
	}
}

// StartContainerd starts containerd again after StopContainerd.
func (c *Cluster) StartContainerd(t testing.TB) {
	t.Helper()
	if err := c.startContainerd(); err != nil {
		t.Fatalf("testbed: containerd: %v", err)
	}
}

// Ctr runs ctr in the k8s.io namespace against the node's containerd and returns its
// standard output; its standard error (where containerd 2 warns that cgroup v1 is
// deprecated, at every call on this machine) goes into the error only.
func (c *Cluster) Ctr(ctx context.Context, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(c.runtime, "ctr"), append([]string{"-a", c.Socket, "-n", "k8s.io"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("ctr %s: %w: %s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out, nil
}

// ImportImage imports a docker-archive tarball into the node's containerd, for CRI.
func (c *Cluster) ImportImage(ctx context.Context, tarball string) error {
	_, err := c.Ctr(ctx, "images", "import", "--snapshotter", "native", tarball)
	return err
}

// RuncVersion is the version of the runc the node's containerd runs ("1.1.5+ds1").
func (c *Cluster) RuncVersion(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(c.runc, "--version").Output()
	if err != nil {
		t.Fatalf("testbed: %s --version: %v", c.runc, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimPrefix(first, "runc version ")
}

// NodeInfo is what the node reports about itself, the kubelet's and the container
// runtime's versions among it.
func (c *Cluster) NodeInfo(t testing.TB) corev1.NodeSystemInfo {
	t.Helper()
	node, err := c.Client.CoreV1().Nodes().Get(t.Context(), c.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("testbed: node %s: %v", c.NodeName, err)
	}
	return node.Status.NodeInfo
}

// startKubelet writes the kubelet's kubeconfig and config, binds its user to system:node
// and starts it.
func (c *Cluster) startKubelet(t testing.TB, token string) error {
	ip, err := nodeIP()
	if err != nil {
		return err
	}
	c.NodeIP = ip
	if err := c.bindNode(t.Context()); err != nil {
		return fmt.Errorf("binding system:node: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	c.kubeletPort = port
	kubeconfig := filepath.Join(c.logDir, "kubelet.kubeconfig")
	if err := c.writeKubeconfig(kubeconfig, token); err != nil {
		return err
	}
	c.kubeletCfg = filepath.Join(c.dir, "kubelet.yaml")
	data := expand(kubeletConfig, map[string]string{"root": c.dir, "nodeip": ip,
		"port": strconv.Itoa(port), "clientca": c.kubeletPKI.caFile})
	if err := os.WriteFile(c.kubeletCfg, []byte(data), 0o644); err != nil {
		return err
	}
	c.kubeletArgs = []string{"--config=" + c.kubeletCfg, "--kubeconfig=" + kubeconfig,
		"--root-dir=" + filepath.Join(c.dir, "kubelet"), "--cert-dir=" + filepath.Join(c.dir, "kubelet-pki"),
		"--hostname-override=" + c.NodeName, "--node-ip=" + ip, "-v=1"}
	return c.runKubelet()
}

// runKubelet starts the kubelet and waits until its server listens: after a restart the
// Node still says Ready from before, so readiness alone tells nothing. A kubelet that exits
// at once because containerd's CRI is still initializing ("server is not initialized yet",
// after a containerd restart) is started again.
func (c *Cluster) runKubelet() error {
	addr := net.JoinHostPort(c.NodeIP, strconv.Itoa(c.kubeletPort))
	listening := func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close()
		}
		return err
	}
	var err error
	for range 10 {
		c.kubelet, err = startProcess("kubelet", filepath.Join(c.tools, "kubelet"), filepath.Join(c.logDir, "kubelet.log"), c.kubeletArgs...)
		if err != nil {
			return err
		}
		if err = waitReady(c.kubelet, startTimeout, listening); err == nil || !c.kubelet.exited() {
			return err
		}
		time.Sleep(time.Second)
	}
	return err
}

// StopKubelet kills the kubelet; pods keep running.
func (c *Cluster) StopKubelet() {
	if c.kubelet != nil {
		c.kubelet.kill()
		c.kubelet = nil
	}
}

// StartKubelet starts the kubelet again after StopKubelet and waits for the node to be Ready.
func (c *Cluster) StartKubelet(t testing.TB) {
	t.Helper()
	if err := c.runKubelet(); err != nil {
		t.Fatalf("testbed: kubelet: %v", err)
	}
	if err := c.waitNodeReady(t.Context()); err != nil {
		t.Fatalf("testbed: %v", err)
	}
}

// nodeIP returns the IPv4 address of the interface of the default route: the kubelet
// refuses loopback as a node IP.
func nodeIP() (string, error) {
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 2 || f[1] != "00000000" {
			continue
		}
		iface, err := net.InterfaceByName(f[0])
		if err != nil {
			return "", err
		}
		addrs, err := iface.Addrs()
		if err != nil {
			return "", err
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String(), nil
			}
		}
	}
	return "", errors.New("no IPv4 address on the default route's interface")
}

// kubeletPKI is a CA the kubelet trusts for client certificates, and the API server's
// client certificate it signed (group system:masters), for exec, logs and port-forward.
type kubeletPKI struct {
	caFile, clientCert, clientKey string
}

func writeKubeletPKI(dir string) (*kubeletPKI, error) {
	caKey, caCert, caDER, err := newCA()
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := certTemplate("kube-apiserver-kubelet-client")
	tmpl.Subject = pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("signing the kubelet client certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	p := &kubeletPKI{caFile: filepath.Join(dir, "kubelet-client-ca.crt"),
		clientCert: filepath.Join(dir, "apiserver-kubelet-client.crt"), clientKey: filepath.Join(dir, "apiserver-kubelet-client.key")}
	for path, data := range map[string][]byte{p.caFile: pemBlock("CERTIFICATE", caDER),
		p.clientCert: pemBlock("CERTIFICATE", der), p.clientKey: pemBlock("EC PRIVATE KEY", keyDER)} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}
