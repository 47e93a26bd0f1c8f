package e2e

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/multinet/multinet/internal/daemon"
	"github.com/multinet/multinet/internal/testbed"
)

// TestOverlayMatchesTheTestbedNode renders test/e2e/overlay with kubectl kustomize and checks
// that its DaemonSet uses the test bed's image without pulling, mounts the node's CNI dirs,
// containerd's netns dir and the kubelet's plugin dirs where internal/testbed puts them, runs
// the NIC DRA driver on the tests' links, and reaches the API on loopback.
// (No root needed: nothing is started.)
func TestOverlayMatchesTheTestbedNode(t *testing.T) {
	kubectl := filepath.Join(testbed.Tools(t, "kube"), "kubectl")
	out, err := exec.Command(kubectl, "kustomize", overlay).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", overlay, err, out)
	}
	ds := overlayDaemonSet(t, out)
	c := ds.Spec.Template.Spec.Containers[0]
	if c.Image != testbed.MultinetImage || c.ImagePullPolicy != "Never" {
		t.Errorf("image %s (pull %s), want %s never pulled", c.Image, c.ImagePullPolicy, testbed.MultinetImage)
	}
	hostPaths := map[string]string{}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	for vol, want := range map[string]string{"cni-conf": testbed.ClusterCNIConfDir, "cni-bin": testbed.ClusterCNIBinDir,
		"testbed-netns": testbed.ClusterNetnsDir} {
		if hostPaths[vol] != want {
			t.Errorf("volume %s is the host's %q, want %q", vol, hostPaths[vol], want)
		}
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.Name == "testbed-netns" && m.MountPath == testbed.ClusterNetnsDir && m.MountPropagation != nil && *m.MountPropagation == "HostToContainer" {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("the netns dir is not mounted at %s with HostToContainer propagation", testbed.ClusterNetnsDir)
	}
	checkKubeletPluginDirs(t, ds, out)
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["KUBERNETES_SERVICE_HOST"] != "127.0.0.1" {
		t.Errorf("KUBERNETES_SERVICE_HOST %q, want 127.0.0.1 (no kube-proxy in the test bed)", env["KUBERNETES_SERVICE_HOST"])
	}
}

// checkKubeletPluginDirs checks the overlay's config file: deploy/'s settings plus the test
// bed's kubelet root dir and a draNICs section publishing the tests' mnnic* links; and that
// the kubelet's plugins_registry and plugins dirs are mounted at their host paths.
func checkKubeletPluginDirs(t *testing.T, ds *appsv1.DaemonSet, rendered []byte) {
	t.Helper()
	var cm corev1.ConfigMap
	overlayObject(t, rendered, "ConfigMap", &cm)
	file := filepath.Join(t.TempDir(), "multinetd.yaml")
	if err := os.WriteFile(file, []byte(cm.Data["multinetd.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := daemon.Parse([]string{"--config", file, "--node-name", "x"})
	if err != nil {
		t.Fatalf("the overlay's config file: %v", err)
	}
	root := filepath.Join(testbed.ClusterRoot, "kubelet") // the kubelet's --root-dir in internal/testbed
	if o.KubeletRootDir != root {
		t.Errorf("kubeletRootDir %q, want the test bed kubelet's %q", o.KubeletRootDir, root)
	}
	if c := o.DRANICs; c == nil || !slices.Equal(c.Include, []string{"mnnic*"}) || c.ResourceName != "multinet.io/test-nic" || !*c.ExcludeDefaultRoute {
		t.Errorf("draNICs %+v, want include [mnnic*], resourceName multinet.io/test-nic, excludeDefaultRoute", c)
	}
	checkSameSettings(t, cm.Data["multinetd.yaml"], "kubeletRootDir", "draNICs")
	for _, dir := range []string{filepath.Join(root, "plugins_registry"), filepath.Join(root, "plugins")} {
		if !mountedFromHost(ds, dir) {
			t.Errorf("%s is not the host's %s mounted at the same path", dir, dir)
		}
	}
}

// checkSameSettings fails when config sets other values than deploy/configmap.yaml's file,
// the keys named in except aside.
func checkSameSettings(t *testing.T, config string, except ...string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var base corev1.ConfigMap
	if err := yaml.Unmarshal(data, &base); err != nil {
		t.Fatal(err)
	}
	var want, got map[string]any
	if err := yaml.Unmarshal([]byte(base.Data["multinetd.yaml"]), &want); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(config), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range except {
		delete(want, k)
		delete(got, k)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the overlay's config file differs from deploy/'s beyond %v:\n got %v\nwant %v", except, got, want)
	}
}

// mountedFromHost tells whether the container mounts the host's dir at the same path.
func mountedFromHost(ds *appsv1.DaemonSet, dir string) bool {
	for _, m := range ds.Spec.Template.Spec.Containers[0].VolumeMounts {
		for _, v := range ds.Spec.Template.Spec.Volumes {
			if m.MountPath == dir && v.Name == m.Name && v.HostPath != nil && v.HostPath.Path == dir {
				return true
			}
		}
	}
	return false
}

// overlayDaemonSet finds the DaemonSet among the rendered documents.
func overlayDaemonSet(t *testing.T, rendered []byte) *appsv1.DaemonSet {
	t.Helper()
	var ds appsv1.DaemonSet
	overlayObject(t, rendered, "DaemonSet", &ds)
	return &ds
}

// overlayObject decodes into out the first rendered document of kind.
func overlayObject(t *testing.T, rendered []byte, kind string, out any) {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufioReader(rendered))
	for {
		doc, err := r.Read()
		if err != nil {
			t.Fatalf("no %s in the rendered overlay", kind)
		}
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err == nil && meta.Kind == kind {
			if err := yaml.Unmarshal(doc, out); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			return
		}
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
