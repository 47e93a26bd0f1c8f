// Package manifests proves that deploy/ is what a cluster accepts: every object of
// deploy/kustomization.yaml is applied server-side to a real kube-apiserver, the
// ServiceAccount's RBAC is checked to be sufficient and least privilege, and the ConfigMap's
// config file and the DaemonSet's command are run through multinetd's own flag parser.
//
// The control plane runs unprivileged (no root needed); it uses the cached kube-apiserver
// that internal/testbed builds.
package manifests

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/multinet/multinet/internal/daemon"
	"github.com/multinet/multinet/internal/testbed"
)

// TestManifestsInstall applies deploy/ to a real kube-apiserver with RBAC on, then checks the
// objects, that a pod of the DaemonSet's template is admitted, and the ServiceAccount's rights.
func TestManifestsInstall(t *testing.T) {
	cp := testbed.StartControlPlane(t, testbed.WithRBAC())
	objs := loadDeploy(t)
	apply(t, cp.Config, objs)
	ds := checkInstalled(t, cp, objs)
	checkNamespace(t, objs, ds)
	admitPod(t, cp, ds)
	checkRBAC(t, cp.Config, ds)
}

// TestConfigFileParses runs the ConfigMap's multinetd.yaml through daemon.Parse, the parser
// multinetd itself uses (strict: an unknown key fails), and checks the values the manifests
// rely on.
func TestConfigFileParses(t *testing.T) {
	objs := loadDeploy(t)
	file := writeConfig(t, configMap(t, objs), daemonSet(t, objs))
	o, err := daemon.Parse([]string{"--config", file, "--node-name", "x"})
	if err != nil {
		t.Fatalf("daemon.Parse of the ConfigMap's config file: %v", err)
	}
	if len(o.GlobalNamespaces) != 0 {
		t.Errorf("globalNamespaces = %v, want none: a global namespace is the cluster admin's choice", o.GlobalNamespaces)
	}
	if o.SweepInterval.Duration != time.Minute || o.RequestTimeout.Duration != 3*time.Minute {
		t.Errorf("sweepInterval %s, requestTimeout %s; want 1m and 3m", o.SweepInterval.Duration, o.RequestTimeout.Duration)
	}
	if !o.WriteConflist {
		t.Error("writeConflist is false: nodes would never get 00-multinet.conflist")
	}
	if !o.DRA || o.DRANICs != nil {
		t.Errorf("dra %v, draNICs %v; want claims resolved and the NIC driver off", o.DRA, o.DRANICs)
	}
	checkNoNodeName(t, file)
	checkDRANICsExample(t, file)
}

// checkDRANICsExample uncomments the config file's draNICs example and checks that multinetd
// accepts it and runs the NIC driver with it.
func checkDRANICsExample(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	start := slices.Index(lines, "# draNICs:")
	if start < 0 {
		t.Fatal("the config file has no commented-out draNICs example")
	}
	for i := start; i < len(lines) && strings.HasPrefix(lines[i], "#") && (i == start || strings.HasPrefix(lines[i], "#  ")); i++ {
		lines[i] = strings.TrimPrefix(lines[i], "# ")
	}
	example := filepath.Join(t.TempDir(), "example.yaml")
	if err := os.WriteFile(example, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := daemon.Parse([]string{"--config", example, "--node-name", "x"})
	if err != nil {
		t.Fatalf("daemon.Parse of the config file with its draNICs example: %v", err)
	}
	if o.DRANICs == nil || len(o.DRANICs.Include) == 0 || o.DRANICs.ResourceName == "" {
		t.Errorf("the draNICs example gives %+v, want a driver with include patterns and a resourceName", o.DRANICs)
	}
}

// TestDaemonSetCommandParses runs the DaemonSet's command line (its --config pointed at the
// ConfigMap's file) through daemon.Parse, and checks that every directory multinetd uses is a
// host directory mounted at the same path, and that the probes reach the metrics address.
func TestDaemonSetCommandParses(t *testing.T) {
	objs := loadDeploy(t)
	ds := daemonSet(t, objs)
	file := writeConfig(t, configMap(t, objs), ds)
	c := multinetd(t, ds)
	args := slices.Clone(c.Command[1:])
	args[slices.Index(args, "--config")+1] = file
	o, err := daemon.Parse(append(args, "--node-name", "x"))
	if err != nil {
		t.Fatalf("daemon.Parse of the DaemonSet's command %q: %v", c.Command, err)
	}
	if o.ShimSource != "/usr/local/bin/multinet" {
		t.Errorf("--shim-source %q, want /usr/local/bin/multinet", o.ShimSource)
	}
	for _, dir := range []string{o.CNIConfDir, o.CNIBinDir, o.StateDir, filepath.Dir(o.Socket), "/var/lib/cni", "/run/netns",
		filepath.Join(o.KubeletRootDir, "plugins_registry"), filepath.Join(o.KubeletRootDir, "plugins")} {
		checkHostMount(t, ds, c, dir)
	}
	checkProbes(t, c, o.MetricsAddress)
	if !hasNodeNameEnv(c) {
		t.Error("container has no NODE_NAME env from spec.nodeName")
	}
	checkPodShape(t, ds, c)
}

// checkNamespace checks that deploy/ creates the namespace multinet runs in, itself, with the
// Pod Security level a privileged host-network pod needs.
func checkNamespace(t *testing.T, objs []*unstructured.Unstructured, ds *appsv1.DaemonSet) {
	t.Helper()
	ns := find(t, objs, "Namespace")
	if ns.GetName() != ds.Namespace {
		t.Errorf("deploy/ creates namespace %q, the DaemonSet runs in %q", ns.GetName(), ds.Namespace)
	}
	if level := ns.GetLabels()["pod-security.kubernetes.io/enforce"]; level != "privileged" {
		t.Errorf("namespace %s enforces Pod Security level %q, want privileged", ns.GetName(), level)
	}
	for _, o := range objs {
		if o.GetNamespace() != "" && o.GetNamespace() != ns.GetName() {
			t.Errorf("%s %s is in namespace %q, not %q", o.GetKind(), o.GetName(), o.GetNamespace(), ns.GetName())
		}
	}
}

// checkPodShape checks what multinetd needs of its pod: the node's network namespace, the
// host's netns paths seen live, root with every capability, and to run on every node.
func checkPodShape(t *testing.T, ds *appsv1.DaemonSet, c *corev1.Container) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork || spec.HostPID {
		t.Errorf("hostNetwork %v, hostPID %v; want true, false", spec.HostNetwork, spec.HostPID)
	}
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Error("container is not privileged")
	}
	for _, m := range c.VolumeMounts {
		live := m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationHostToContainer
		if strings.HasSuffix(m.MountPath, "/netns") && !live {
			t.Errorf("%s without HostToContainer propagation: pods' netns created later are not visible", m.MountPath)
		}
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == ""
	}) {
		t.Error("no toleration of every taint (operator Exists)")
	}
}

// multinetd returns the DaemonSet's only container.
func multinetd(t *testing.T, ds *appsv1.DaemonSet) *corev1.Container {
	t.Helper()
	cs := ds.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("DaemonSet has %d containers, want 1", len(cs))
	}
	if filepath.Base(cs[0].Command[0]) != "multinetd" {
		t.Fatalf("container command %q does not run multinetd", cs[0].Command)
	}
	return &cs[0]
}

// writeConfig writes the ConfigMap's key that the DaemonSet's --config names to a temp file,
// after checking that the DaemonSet mounts that ConfigMap at the --config directory.
func writeConfig(t *testing.T, cm *corev1.ConfigMap, ds *appsv1.DaemonSet) string {
	t.Helper()
	c := multinetd(t, ds)
	i := slices.Index(c.Command, "--config")
	if i < 0 || i+1 >= len(c.Command) {
		t.Fatalf("command %q has no --config FILE", c.Command)
	}
	path := c.Command[i+1]
	vol := mountedVolume(t, ds, c, filepath.Dir(path))
	if vol.ConfigMap == nil || vol.ConfigMap.Name != cm.Name {
		t.Fatalf("%s is not the ConfigMap %s", filepath.Dir(path), cm.Name)
	}
	data, ok := cm.Data[filepath.Base(path)]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.Name, filepath.Base(path))
	}
	file := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// checkNoNodeName fails if the config file sets nodeName, which must come from $NODE_NAME.
func checkNoNodeName(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(data, &keys); err != nil {
		t.Fatal(err)
	}
	if _, ok := keys["nodeName"]; ok {
		t.Error("the config file sets nodeName: every node would claim the same name")
	}
}

// mountedVolume returns the volume the container mounts at path.
func mountedVolume(t *testing.T, ds *appsv1.DaemonSet, c *corev1.Container, path string) *corev1.Volume {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath != path {
			continue
		}
		for i, v := range ds.Spec.Template.Spec.Volumes {
			if v.Name == m.Name {
				return &ds.Spec.Template.Spec.Volumes[i]
			}
		}
		t.Fatalf("mount %s names no volume %q", path, m.Name)
	}
	t.Fatalf("nothing is mounted at %s", path)
	return nil
}

// checkHostMount checks that dir is the host's dir of the same path, mounted read-write.
func checkHostMount(t *testing.T, ds *appsv1.DaemonSet, c *corev1.Container, dir string) {
	t.Helper()
	v := mountedVolume(t, ds, c, dir)
	if v.HostPath == nil || v.HostPath.Path != dir {
		t.Errorf("%s is not the host's %s", dir, dir)
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath == dir && m.ReadOnly {
			t.Errorf("%s is mounted read-only", dir)
		}
	}
}

// checkProbes checks that both probes are HTTP GETs to the metrics address.
func checkProbes(t *testing.T, c *corev1.Container, addr string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("metricsAddress %q: %v", addr, err)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no %s httpGet probe", name)
			continue
		}
		if p.HTTPGet.Port != intstr.Parse(port) || p.HTTPGet.Host != host {
			t.Errorf("%s probe goes to %s:%s, metrics listen on %s", name, p.HTTPGet.Host, p.HTTPGet.Port.String(), addr)
		}
	}
}

func hasNodeNameEnv(c *corev1.Container) bool {
	for _, e := range c.Env {
		if e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			return true
		}
	}
	return false
}
