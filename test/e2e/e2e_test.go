// Package e2e runs multinet as users do: deployed from deploy/ (with the test bed's overlay,
// test/e2e/overlay) as a DaemonSet on a real one-node cluster (internal/testbed's Cluster:
// kubelet, containerd, control plane with RBAC), with real pods whose networks containerd
// sets up through multinet's shim. Needs root; one cluster at a time per machine.
package e2e

import (
	"testing"

	"github.com/multinet/multinet/internal/testbed"
)

// overlay is the test bed's kustomization over deploy/.
const overlay = "overlay"

// TestRealNode brings up the cluster once, deploys multinet, and runs each behaviour as a
// subtest on it, in an order where later ones (restarts, reboot) find the earlier pods.
func TestRealNode(t *testing.T) {
	testbed.RequireRoot(t)
	c := testbed.StartCluster(t)
	c.DeployMultinet(t, overlay)
	e := &env{c: c}
	for _, s := range []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"PodsWith0And1And3Networks", testPodsWithNetworks},
		{"NADOfAnotherNamespaceByDefault", testCrossNamespaceNAD},
		{"HotplugOnDeploymentPods", testHotplugDeployment},
		{"DelAfterNADDeleted", testNADDeletedThenPod},
		{"DeviceNetworkFromResourceClaims", testDeviceNetwork},
		{"DeviceNetworkDaemonKilledAroundPrepareAndDel", testDeviceNetworkDaemonKilled},
		{"DaemonRestartWhilePodsAreCreated", testDaemonRestartDuringCreate},
		{"UpgradeWithoutTextFileBusy", testUpgrade},
		{"NodeServicesRestart", testNodeServicesRestart},
		{"Reboot", testReboot},
	} {
		if !t.Run(s.name, func(t *testing.T) { s.run(t, e) }) {
			return // the next behaviours build on this one's pods
		}
	}
}
