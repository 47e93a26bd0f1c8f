package testbed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// hostSysctls are the sysctls the kubelet sets at start (setupKernelTunables) and the
// bridge plugin may set; teardown writes back what they were.
var hostSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward",
}

// hostFixedPaths are the host paths that the node's CNI plugins (libcni's result cache and
// host-local's leases under /var/lib/cni, which containerd gives no setting for), the kubelet
// and multinetd's DaemonSet write whatever their configuration; teardown removes those that
// were absent. containerd itself writes nothing outside ClusterRoot (containerdConfig).
var hostFixedPaths = []string{
	"/var/lib/cni", "/var/lib/kubelet", "/run/multinet", "/var/lib/multinet",
	"/run/netns", "/run/xtables.lock", "/var/log/containers", "/var/log/pods", "/etc/cni",
	"/opt/cni",
}

// hostState is what the host looked like before the cluster: written next to ClusterRoot so
// that a cluster whose test binary died is cleaned by the next one.
type hostState struct {
	Sysctls map[string]string `json:"sysctls"`
	Absent  []string          `json:"absent"`
	// AbsentCgroups are the cgroup directories containerd's pods go under (k8s.io in every
	// hierarchy), removed with rmdir: cgroupfs refuses to remove files.
	AbsentCgroups []string `json:"absentCgroups"`
}

// podCgroups are the cgroup directories of the node's containers.
func podCgroups() []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/k8s.io")
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		dirs = append(dirs, "/sys/fs/cgroup/k8s.io") // cgroup v2
	}
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*/cgroup.procs")
	for _, h := range hierarchies {
		dirs = append(dirs, filepath.Join(filepath.Dir(h), "k8s.io"))
	}
	slices.Sort(dirs)
	return slices.Compact(dirs)
}

// removeCgroup removes an empty cgroup directory tree, deepest first.
func removeCgroup(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroup(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

func hostStateFile(root string) string { return root + ".host.json" }

// recordHost saves the sysctls and which fixed paths are absent.
func recordHost(root string) (*hostState, error) {
	h := &hostState{Sysctls: map[string]string{}}
	for _, k := range hostSysctls {
		v, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err == nil {
			h.Sysctls[k] = strings.TrimSpace(string(v))
		}
	}
	for _, p := range append(slices.Clone(hostFixedPaths), root) {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			h.Absent = append(h.Absent, p)
		}
	}
	for _, p := range podCgroups() {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			h.AbsentCgroups = append(h.AbsentCgroups, p)
		}
	}
	data, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	return h, os.WriteFile(hostStateFile(root), data, 0o600)
}

// restore writes the sysctls back and removes the fixed paths that were absent.
func (h *hostState) restore(root string) error {
	var errs []error
	for k, v := range h.Sysctls {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s: %w", k, err))
		}
	}
	for _, p := range h.Absent {
		unmountUnder(p)
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range h.AbsentCgroups {
		if err := removeCgroup(p); err != nil {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", p, err))
		}
	}
	if err := os.Remove(hostStateFile(root)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cleanStaleCluster cleans what a cluster whose test binary died left behind: its shims and
// containers, mounts, the bridge, and the host state it had recorded.
func cleanStaleCluster(root string) error {
	data, err := os.ReadFile(hostStateFile(root))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var h hostState
	if err := json.Unmarshal(data, &h); err != nil {
		return fmt.Errorf("%s: %w", hostStateFile(root), err)
	}
	killShims(root)
	unmountUnder(root)
	deleteTestbedLinks()
	return h.restore(root)
}

// teardown removes everything the cluster made, in the order that leaves nothing: pods
// deleted through the API while kubelet, containerd and multinet run (CNI DEL), multinet's
// own pods last; then the kubelet, containerd and their shims stopped; mounts removed; the
// bridge deleted; sysctls and fixed paths restored.
func (c *Cluster) teardown(t testing.TB) {
	if c.kubelet != nil && c.containerd != nil && !c.kubelet.exited() && !c.containerd.exited() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		if err := c.deleteAllPods(ctx); err != nil {
			t.Errorf("testbed: deleting the cluster's pods: %v", err)
		}
		cancel()
	}
	if t.Failed() {
		for _, p := range []*process{c.kubelet, c.containerd, c.controller, c.scheduler} {
			if p != nil {
				t.Log(p.logTail(40))
			}
		}
	}
	for _, p := range []*process{c.kubelet, c.scheduler, c.controller, c.containerd} {
		if p != nil {
			p.kill()
		}
	}
	c.kubelet, c.scheduler, c.controller, c.containerd = nil, nil, nil, nil
	killShims(c.dir)
	unmountUnder(c.dir)
	deleteTestbedLinks()
	if err := c.host.restore(c.dir); err != nil {
		t.Errorf("testbed: restoring the host: %v", err)
	}
}

// deleteAllPods deletes every pod, multinet's (namespace MultinetNamespace) last, and waits
// until they are gone: the kubelet stops their sandboxes, so CNI DEL runs for each.
func (c *Cluster) deleteAllPods(ctx context.Context) error {
	pods, err := c.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var namespaces []string
	for _, p := range pods.Items {
		if !slices.Contains(namespaces, p.Namespace) && p.Namespace != MultinetNamespace {
			namespaces = append(namespaces, p.Namespace)
		}
	}
	for _, ns := range namespaces {
		if err := c.deletePodsIn(ctx, ns); err != nil {
			return err
		}
	}
	return c.deletePodsIn(ctx, MultinetNamespace)
}

func (c *Cluster) deletePodsIn(ctx context.Context, namespace string) error {
	// Controllers would recreate the pods: their owners go first.
	zero := int64(1)
	opts := metav1.DeleteOptions{GracePeriodSeconds: &zero}
	_ = c.Client.AppsV1().DaemonSets(namespace).DeleteCollection(ctx, opts, metav1.ListOptions{})
	_ = c.Client.AppsV1().Deployments(namespace).DeleteCollection(ctx, opts, metav1.ListOptions{})
	_ = c.Client.AppsV1().ReplicaSets(namespace).DeleteCollection(ctx, opts, metav1.ListOptions{})
	if err := c.Client.CoreV1().Pods(namespace).DeleteCollection(ctx, opts, metav1.ListOptions{}); err != nil {
		return err
	}
	return wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		pods, err := c.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		return len(pods.Items) == 0, nil
	})
}

// deleteTestbedLinks deletes the cluster bridge and every link named with the test bed's
// prefix "mnt-" (the bridges of test networks: the bridge plugin leaves them behind).
func deleteTestbedLinks() {
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if strings.HasPrefix(i.Name, "mnt-") {
			DeleteLink(i.Name)
		}
	}
}

// killShims kills the containerd shims of the cluster's containerd (found by its socket in
// their command line) and every process in their pods: they outlive containerd by design.
func killShims(root string) {
	address := filepath.Join(root, "containerd")
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), "containerd-shim") || !strings.Contains(string(cmdline), address) {
			continue
		}
		killTree(pid)
	}
}

// killTree SIGKILLs pid's children (the pods' processes), then pid.
func killTree(pid int) {
	children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, c := range strings.Fields(string(children)) {
		if cpid, err := strconv.Atoi(c); err == nil {
			killTree(cpid)
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// unmountUnder lazily unmounts every mount point at or under dir, deepest first, until none
// is left (bind mounts may be stacked).
func unmountUnder(dir string) {
	for range 10 {
		points := mountsUnder(dir)
		if len(points) == 0 {
			return
		}
		slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
		for _, p := range points {
			_ = unix.Unmount(p, unix.MNT_DETACH)
		}
	}
}

// mountsUnder lists the mount points at or under dir (from /proc/self/mountinfo).
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	var points []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMount(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	return points
}

// unescapeMount decodes the octal escapes (\040 for a space) of mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lockCluster takes the machine-wide lock of the one cluster (fixed paths, ports, the
// kubelet's constant directories): test binaries that go test runs in parallel take turns.
func lockCluster() (unlock func(), err error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, "multinet")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "cluster.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { _ = f.Close() }, nil
}
