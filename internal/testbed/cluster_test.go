package testbed_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multinet/multinet/internal/testbed"
)

// TestClusterRunsPodAndLeavesHostAsItWas starts the real one-node cluster, runs a busybox
// pod on the cluster network only (eth0 in the cluster subnet, no route out), deletes it (CNI
// DEL frees its address and link), and after teardown finds the host as it was: sysctls,
// mounts, the bridge, ClusterRoot and the fixed paths. While the pod runs, the node's
// runtime is containerd 2 (hack/tools.sh's, not the host's) and has written nothing under
// /run/containerd or /run/nri: containerd 2 puts its shim sockets, runc's state and NRI's
// socket there unless told otherwise (containerd 1.6 had no setting for the shim sockets'
// directory, nor had 2.x before 2.3: the shim manager's socket_dir).
func TestClusterRunsPodAndLeavesHostAsItWas(t *testing.T) {
	testbed.RequireRoot(t)
	before := hostSnapshot(t)
	t.Run("cluster", func(t *testing.T) {
		c := testbed.StartCluster(t)
		start := time.Now()
		c.CreatePodObject(t, testbed.BusyboxPod("default", "bb", nil))
		pod := c.WaitPodRunning(t, "default", "bb", 2*time.Minute)
		t.Logf("pod Running in %s, IP %s", time.Since(start).Round(time.Millisecond), pod.Status.PodIP)
		info := c.NodeInfo(t)
		t.Logf("node: kubelet %s, %s", info.KubeletVersion, info.ContainerRuntimeVersion)
		if !strings.HasPrefix(info.ContainerRuntimeVersion, "containerd://2.") {
			t.Errorf("node's container runtime is %q, want containerd://2.*", info.ContainerRuntimeVersion)
		}
		for _, p := range []string{"/run/containerd", "/run/nri"} {
			if _, err := os.Lstat(p); err == nil && before["path "+p] == "" {
				t.Errorf("the node's containerd made %s", p)
			}
		}
		if !strings.HasPrefix(pod.Status.PodIP, "10.244.0.") {
			t.Errorf("pod IP %q not in the cluster subnet %s", pod.Status.PodIP, testbed.ClusterSubnet)
		}
		links := c.MustExec(t, "default", "bb", "ip", "-o", "link")
		if !strings.Contains(links, "eth0") || strings.Contains(links, "net1") {
			t.Errorf("pod links:\n%s\nwant eth0 and no secondary interface", links)
		}
		if out, err := c.Exec(t, "default", "bb", "ping", "-c1", "-W1", "192.0.2.1"); err == nil {
			t.Errorf("pod reached an outside address:\n%s", out)
		}
		if n := testbed.VethsOn(t, testbed.ClusterBridge); n != 1 {
			t.Errorf("%d veths on %s, want 1", n, testbed.ClusterBridge)
		}
		c.DeletePod(t, "default", "bb")
		if n := testbed.VethsOn(t, testbed.ClusterBridge); n != 0 {
			t.Errorf("%d veths on %s after the pod was deleted, want 0", n, testbed.ClusterBridge)
		}
		if ips := testbed.Allocations(t, "/var/lib/cni/networks/testbed-cluster"); len(ips) != 0 {
			t.Errorf("host-local still holds %v after the pod was deleted", ips)
		}
	})
	after := hostSnapshot(t)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("after teardown %s = %q, before %q", k, after[k], v)
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("after teardown %s = %q, absent before", k, v)
		}
	}
}

// hostSnapshot is what the cluster must leave as it found: sysctls, mount points, links,
// and the fixed paths.
func hostSnapshot(t *testing.T) map[string]string {
	t.Helper()
	s := map[string]string{}
	for _, k := range []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops", "net/ipv4/ip_forward",
		"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "vm/panic_on_oom"} {
		v, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			t.Fatal(err)
		}
		s["sysctl "+k] = strings.TrimSpace(string(v))
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		// Only the cluster's places: other test binaries make netns mounts meanwhile.
		if f := strings.Fields(line); len(f) > 4 && clusterPlace(f[4]) {
			s["mount "+f[4]] = "mounted"
		}
	}
	for _, l := range testbed.HostLinks(t, "mnt-") {
		s["link "+l] = "present"
	}
	for _, p := range []string{testbed.ClusterRoot, "/run/containerd", "/var/lib/cni", "/var/lib/kubelet",
		"/run/multinet", "/var/lib/multinet", "/run/netns", "/run/xtables.lock", "/var/log/containers", "/var/log/pods",
		"/run/nri"} {
		if _, err := os.Lstat(p); err == nil {
			s["path "+p] = "present"
		}
	}
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*/k8s.io")
	for _, p := range cgroups {
		s["cgroup "+p] = "present"
	}
	return s
}

func clusterPlace(path string) bool {
	for _, p := range []string{testbed.ClusterRoot, "/run/containerd", "/var/lib/kubelet", "/var/lib/cni", "/run/multinet"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}
