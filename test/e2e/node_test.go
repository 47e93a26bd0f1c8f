package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/multinet/multinet/internal/testbed"
)

// clusterIPAMDir is host-local's dir of the cluster network on the node.
var clusterIPAMDir = ipamDir("testbed-cluster")

func ipamDir(network string) string { return filepath.Join("/var/lib/cni/networks", network) }

// testNodeServicesRestart stops the kubelet, containerd and multinetd and starts them again:
// running pods keep their sandboxes, addresses and networks.
func testNodeServicesRestart(t *testing.T, e *env) {
	before := e.addrs(t, "tenant", "three")
	e.c.StopKubelet()
	e.c.StopContainerd()
	e.c.KillMultinetd(t)
	e.c.StartContainerd(t)
	e.c.StartKubelet(t)
	e.c.WaitMultinetReady(t)
	pod := e.c.WaitPodRunning(t, "tenant", "three", 2*time.Minute)
	if got := e.addrs(t, "tenant", "three"); !maps(got, before) {
		t.Errorf("pod three's addresses changed across the restart: %v, before %v", got, before)
	}
	if pod.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("pod three's container restarted %d times", pod.Status.ContainerStatuses[0].RestartCount)
	}
	e.checkPodNetworks(t, "tenant", "three", e.networks(t, "blue", "green", "red")...)
}

// testReboot stops the node's services, kills every pod process and removes the pods' netns
// files, as a reboot does, then starts containerd and the kubelet while multinetd is not up:
// every pod gets new sandboxes with all its networks (none with eth0 only), the old
// attachments are cleaned up and no address or link is leaked.
func testReboot(t *testing.T, e *env) {
	rebooted := time.Now()
	e.c.SimulateReboot(t)
	pods := e.c.ListPods(t, "tenant")
	for _, p := range pods {
		e.c.WaitPodRunningSince(t, "tenant", p.Name, rebooted, 4*time.Minute)
	}
	t.Logf("all %d pods Running again %s after the reboot", len(pods), time.Since(rebooted).Round(time.Second))
	e.c.WaitMultinetReady(t)
	want := map[string]int{}
	for _, p := range pods {
		nets := e.podNetworks(p)
		e.checkPodNetworks(t, "tenant", p.Name, nets...)
		for _, n := range nets {
			want[n.name]++
		}
	}
	// The sweep and GC release what the dead sandboxes held; give them a moment.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		leaks := e.leaks(t, want, len(pods))
		if len(leaks) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after the reboot: %v", leaks)
			break
		}
		time.Sleep(2 * time.Second)
	}
}

// leaks compares the addresses held and the veths on each bridge with the pods running.
func (e *env) leaks(t *testing.T, want map[string]int, pods int) []string {
	var out []string
	for name, n := range want {
		if got := len(testbed.Allocations(t, ipamDir(name))); got != n {
			out = append(out, name+": "+itoa(got)+" addresses held, "+itoa(n)+" pods")
		}
		if got := testbed.VethsOn(t, "mnt-"+name); got != n {
			out = append(out, "mnt-"+name+": "+itoa(got)+" veths, "+itoa(n)+" pods")
		}
	}
	if got := len(testbed.Allocations(t, clusterIPAMDir)); got != pods {
		out = append(out, "cluster network: "+itoa(got)+" addresses held, "+itoa(pods)+" pods")
	}
	entries, _ := os.ReadDir(filepath.Join(multinetStateDir, "checkpoints"))
	if len(entries) != pods {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		slices.Sort(names)
		out = append(out, "checkpoints: "+itoa(len(entries))+" for "+itoa(pods)+" pods")
	}
	return out
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
