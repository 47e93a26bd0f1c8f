package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multinet/multinet/internal/testbed"
)

// multinetStateDir is multinetd's state dir on the node (test/e2e/overlay's hostPath).
var multinetStateDir = filepath.Join(testbed.ClusterRoot, "multinet")

// testCrossNamespaceNAD: with deploy/'s settings (namespaceIsolation off, as in Multus), a
// pod may name a NAD of another namespace, `other/purple`, as the NPWG spec allows: it runs
// with that network on net1. The strict mode is tested in test/integration.
func testCrossNamespaceNAD(t *testing.T, e *env) {
	e.c.CreateNamespace(t, "other")
	purple := e.createNetwork(t, "other", "purple", 9)
	e.startPod(t, "tenant", "neighbour", purple)
	e.checkPodNetworks(t, "tenant", "neighbour", purple)
	e.c.DeletePod(t, "tenant", "neighbour")
	if got := testbed.Allocations(t, ipamDir("purple")); len(got) != 0 {
		t.Errorf("purple addresses leaked after the pod was deleted: %v", got)
	}
}

// testNADDeletedThenPod: the NAD goes first, then the pod: DEL still succeeds (from the
// checkpoint), and no address or link of either network is left.
func testNADDeletedThenPod(t *testing.T, e *env) {
	yellow := e.createNetwork(t, "tenant", "yellow", 4)
	clusterBefore := len(testbed.Allocations(t, clusterIPAMDir))
	e.startPod(t, "tenant", "orphan", yellow)
	e.checkPodNetworks(t, "tenant", "orphan", yellow)
	if n := len(testbed.Allocations(t, ipamDir("yellow"))); n != 1 {
		t.Fatalf("%d addresses of yellow in use, want 1", n)
	}
	e.c.DeleteNAD(t, "tenant", "yellow")
	e.c.DeletePod(t, "tenant", "orphan")
	if got := testbed.Allocations(t, ipamDir("yellow")); len(got) != 0 {
		t.Errorf("yellow addresses leaked after the pod was deleted: %v", got)
	}
	if n := testbed.VethsOn(t, "mnt-yellow"); n != 0 {
		t.Errorf("%d veths left on mnt-yellow", n)
	}
	if n := len(testbed.Allocations(t, clusterIPAMDir)); n != clusterBefore {
		t.Errorf("cluster network holds %d addresses, %d before the pod", n, clusterBefore)
	}
	if evs := e.c.PodEvents(t, "tenant", "orphan"); strings.Contains(evs, "NetworkTeardownFailed") {
		t.Errorf("teardown failed:\n%s", evs)
	}
}

// testDaemonRestartDuringCreate deletes multinetd's pod while pods are created: they wait
// (the shim's retriable error, retried by the kubelet) and start with all their networks.
func testDaemonRestartDuringCreate(t *testing.T, e *env) {
	nets := e.networks(t, "blue", "green")
	old := e.c.MultinetPod(t)
	e.c.DeletePodNoWait(t, testbed.MultinetNamespace, old.Name)
	names := []string{"during-0", "during-1", "during-2"}
	for _, n := range names {
		e.c.CreatePodObject(t, testbed.BusyboxPod("tenant", n, annotation(nets)))
	}
	e.c.WaitMultinetReady(t)
	for _, n := range names {
		e.c.WaitPodRunning(t, "tenant", n, 3*time.Minute)
		e.checkPodNetworks(t, "tenant", n, nets...)
	}
	t.Logf("sandbox creations that failed and were retried while multinetd restarted: %d", e.failedSandboxes(t, names))
}

// testUpgrade replaces multinet's image (other binaries: stripped this time) while pods are
// created: the new
// multinetd installs the shim beside the running one (write + rename), so no ADD fails with
// "text file busy" and every pod gets its networks.
func testUpgrade(t *testing.T, e *env) {
	nets := e.networks(t, "blue")
	shim := filepath.Join(testbed.ClusterCNIBinDir, "multinet")
	before := fileID(t, shim)
	e.c.BuildMultinetImageWith(t, testbed.MultinetImage+"-v2", "-s -w")
	names := []string{"upgrade-0", "upgrade-1", "upgrade-2", "upgrade-3"}
	e.c.RunKubectl(t, "-n", testbed.MultinetNamespace, "set", "image", "daemonset/multinet", "multinetd="+testbed.MultinetImage+"-v2")
	for _, n := range names {
		e.c.CreatePodObject(t, testbed.BusyboxPod("tenant", n, annotation(nets)))
		time.Sleep(500 * time.Millisecond)
	}
	e.c.RunKubectl(t, "-n", testbed.MultinetNamespace, "rollout", "status", "daemonset/multinet", "--timeout=3m")
	for _, n := range names {
		e.c.WaitPodRunning(t, "tenant", n, 3*time.Minute)
		e.checkPodNetworks(t, "tenant", n, nets...)
		if evs := e.c.PodEvents(t, "tenant", n); strings.Contains(evs, "text file busy") {
			t.Errorf("pod %s: an ADD failed with text file busy:\n%s", n, evs)
		}
	}
	if fileID(t, shim) == before {
		t.Errorf("the shim %s was not replaced by the upgrade", shim)
	}
	t.Logf("sandbox creations that failed and were retried during the upgrade: %d", e.failedSandboxes(t, names))
}

// fileID identifies a file's content.
func fileID(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(data))
}
