package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/dra/nics"
	"github.com/multinet/multinet/internal/testbed"
)

// TestNICDriverRunsInMultinetd: multinetd with a draNICs section runs the NIC DRA driver with
// its sockets under --kubelet-root-dir and its state under the state dir. The driver failing
// at start (the kubelet's registration dir is not a directory) takes nothing else down:
// multinetd becomes ready, says why the driver stopped, and restarts it, which then publishes
// the test's link, and only it, in a ResourceSlice of the node.
func TestNICDriverRunsInMultinetd(t *testing.T) {
	testbed.RequireRoot(t)
	cp := testbed.StartControlPlane(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testbed.NodeName}}
	if _, err := cp.Client.CoreV1().Nodes().Create(t.Context(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	id := testbed.RandomID()
	nic := "mnnic" + id + "a"
	newHostNIC(t, "", nic, "mnp"+id+"a")
	newHostNIC(t, "", "mnother"+id, "mnq"+id) // not included: never published

	root, err := os.MkdirTemp("", "mkub") // short: socket paths have a length limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	registrar := filepath.Join(root, "plugins_registry")
	testbed.WriteFile(t, registrar, "not a directory")
	config := filepath.Join(root, "multinetd.yaml")
	testbed.WriteFile(t, config, fmt.Sprintf("draNICs:\n  include: [\"mnnic%s*\"]\n  resourceName: multinet.io/test-nic\n", id))

	n := testbed.NewNode(t, cp, "--config", config, "--kubelet-root-dir", root)
	waitLog(t, n, "NIC DRA driver stopped")
	if err := os.Remove(registrar); err != nil {
		t.Fatal(err)
	}

	dev := waitPublished(t, cp, nic)
	if s := dev.Attributes[nics.AttrResourceName].StringValue; s == nil || *s != "multinet.io/test-nic" {
		t.Errorf("resourceName attribute %v, want multinet.io/test-nic", s)
	}
	for _, p := range []string{filepath.Join(registrar, nics.DefaultDriver+"-reg.sock"),
		filepath.Join(root, "plugins", nics.DefaultDriver, "dra.sock"), filepath.Join(n.StateDir, "dra-nics")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the driver's %s: %v", filepath.Base(p), err)
		}
	}
}

// waitLog waits until multinetd's log holds msg.
func waitLog(t *testing.T, n *testbed.Node, msg string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(filepath.Join(n.Dir, "multinetd.log"))
		if strings.Contains(string(data), msg) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("multinetd never logged %q\n%s", msg, n.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPublished waits until the node's ResourceSlices of the NIC driver hold exactly one
// device, named name, and returns it.
func waitPublished(t *testing.T, cp *testbed.ControlPlane, name string) resourceapi.Device {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := cp.Client.ResourceV1().ResourceSlices().List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var devs []resourceapi.Device
		for _, s := range list.Items {
			if s.Spec.Driver == nics.DefaultDriver && s.Spec.NodeName != nil && *s.Spec.NodeName == testbed.NodeName {
				devs = append(devs, s.Spec.Devices...)
			}
		}
		if len(devs) == 1 && devs[0].Name == name {
			return devs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node's slices hold %d devices, want %s alone: %+v", len(devs), name, devs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
