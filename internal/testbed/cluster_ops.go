package testbed

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GetPod returns the pod as stored.
func (c *Cluster) GetPod(t testing.TB, namespace, name string) *corev1.Pod {
	t.Helper()
	p, err := c.Client.CoreV1().Pods(namespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("testbed: getting pod %s/%s: %v", namespace, name, err)
	}
	return p
}

// ListPods returns the pods of a namespace.
func (c *Cluster) ListPods(t testing.TB, namespace string) []corev1.Pod {
	t.Helper()
	pods, err := c.Client.CoreV1().Pods(namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("testbed: listing pods of %s: %v", namespace, err)
	}
	return pods.Items
}

// DeletePodNoWait asks for the pod's deletion and returns at once.
func (c *Cluster) DeletePodNoWait(t testing.TB, namespace, name string) {
	t.Helper()
	err := c.Client.CoreV1().Pods(namespace).Delete(t.Context(), name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("testbed: deleting pod %s/%s: %v", namespace, name, err)
	}
}

// DeleteNAD deletes a NetworkAttachmentDefinition.
func (c *Cluster) DeleteNAD(t testing.TB, namespace, name string) {
	t.Helper()
	err := c.NADClient.K8sCniCncfIoV1().NetworkAttachmentDefinitions(namespace).Delete(t.Context(), name, metav1.DeleteOptions{})
	if err != nil {
		t.Fatalf("testbed: deleting network-attachment-definition %s/%s: %v", namespace, name, err)
	}
}

// KillMultinetd kills the multinetd process of the node (the container's, found by its
// command line), as a crash or a node shutdown would.
func (c *Cluster) KillMultinetd(t testing.TB) {
	t.Helper()
	pids := processes(func(cmdline string) bool {
		return strings.HasPrefix(cmdline, "/usr/local/bin/multinetd\x00")
	})
	if len(pids) == 0 {
		t.Fatal("testbed: no multinetd process on the node")
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// SimulateReboot does to the node what a reboot does: the kubelet and containerd stop, every
// pod process dies (multinetd's too), the pods' network namespaces and every mount go, and
// the tmpfs state (containerd's state dir, its shim sockets, multinet's socket) is lost; the
// disk (containerd's root, the kubelet's dir, multinetd's checkpoints, host-local's leases)
// stays. Then containerd and the kubelet start again, before multinetd is up: the kubelet
// starts multinetd's pod and the others at the same time. It returns when the node is Ready.
func (c *Cluster) SimulateReboot(t testing.TB) {
	t.Helper()
	c.StopKubelet()
	c.StopContainerd()
	killShims(c.dir)
	unmountUnder(c.dir)
	for _, p := range []string{filepath.Join(c.dir, "containerd", "state"), filepath.Join(c.dir, "containerd", "s"), "/run/multinet/multinet.sock"} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatalf("testbed: %v", err)
		}
	}
	if err := c.prepareDirs(); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	time.Sleep(time.Second) // let the kernel destroy the dead netns and their veths
	c.StartContainerd(t)
	c.StartKubelet(t)
}

// processes returns the PIDs whose NUL-separated command line matches.
func processes(match func(cmdline string) bool) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && match(string(cmdline)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// BuildMultinetImageWith is BuildMultinetImage with extra -ldflags, so that an "upgrade"
// has other binaries than the installed ones.
func (c *Cluster) BuildMultinetImageWith(t testing.TB, ref, ldflags string) {
	t.Helper()
	c.buildLdflags = ldflags
	defer func() { c.buildLdflags = "" }()
	c.BuildMultinetImage(t, ref)
}
