package e2e

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/multinet/multinet/internal/testbed"
)

// TestOverlayMatchesTheTestbedNode renders test/e2e/overlay with kubectl kustomize and checks
// that its DaemonSet uses the test bed's image without pulling, mounts the node's CNI dirs and
// containerd's netns dir where internal/testbed puts them, and reaches the API on loopback.
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
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["KUBERNETES_SERVICE_HOST"] != "127.0.0.1" {
		t.Errorf("KUBERNETES_SERVICE_HOST %q, want 127.0.0.1 (no kube-proxy in the test bed)", env["KUBERNETES_SERVICE_HOST"])
	}
}

// overlayDaemonSet finds the DaemonSet among the rendered documents.
func overlayDaemonSet(t *testing.T, rendered []byte) *appsv1.DaemonSet {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufioReader(rendered))
	for {
		doc, err := r.Read()
		if err != nil {
			t.Fatal("no DaemonSet in the rendered overlay")
		}
		var ds appsv1.DaemonSet
		if err := yaml.Unmarshal(doc, &ds); err == nil && ds.Kind == "DaemonSet" {
			return &ds
		}
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
