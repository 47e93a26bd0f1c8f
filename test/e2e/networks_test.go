package e2e

import (
	"testing"
)

// testPodsWithNetworks starts pods with 0, 1 and 3 secondary networks: each is Running with
// eth0 on the cluster network and one netN per network, in order, as its network-status says.
func testPodsWithNetworks(t *testing.T, e *env) {
	e.c.CreateNamespace(t, "tenant")
	nets := []network{
		e.createNetwork(t, "tenant", "blue", 1),
		e.createNetwork(t, "tenant", "green", 2),
		e.createNetwork(t, "tenant", "red", 3),
	}
	e.startPod(t, "tenant", "zero")
	e.startPod(t, "tenant", "one", nets[0])
	e.startPod(t, "tenant", "three", nets...)
	e.checkPodNetworks(t, "tenant", "zero")
	e.checkPodNetworks(t, "tenant", "one", nets[0])
	e.checkPodNetworks(t, "tenant", "three", nets...)
}
