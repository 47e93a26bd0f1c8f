package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/vishvananda/netlink"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/testbed"
)

// resourceNameAnnotation makes a NAD device-backed (the Multus annotation).
const resourceNameAnnotation = "k8s.v1.cni.cncf.io/resourceName"

// nicStateFile is where the NIC driver records its prepared claims (<stateDir>/dra-nics).
var nicStateFile = filepath.Join(multinetStateDir, "dra-nics", "prepared.json")

// createAnnotatedNAD creates a NetworkAttachmentDefinition with annotations.
func (e *env) createAnnotatedNAD(t testing.TB, namespace, name, config string, annotations map[string]string) {
	t.Helper()
	nad := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Annotations: annotations},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: config},
	}
	if _, err := e.c.NADClient.K8sCniCncfIoV1().NetworkAttachmentDefinitions(namespace).Create(t.Context(), nad, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating network-attachment-definition %s/%s: %v", namespace, name, err)
	}
}

// vethPair creates the host veth pair a<->b (test NICs: the driver publishes mnnic*) and
// returns their MACs by name. t.Cleanup deletes the pair wherever it is then: deleting the
// end left on the host deletes its peer in a pod too.
func vethPair(t testing.TB, a, b string) map[string]string {
	t.Helper()
	deleteHostLinks(a, b) // a killed earlier run's
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("creating veth pair %s<->%s: %v", a, b, err)
	}
	t.Cleanup(func() { deleteHostLinks(a, b) })
	macs := map[string]string{}
	for _, name := range []string{a, b} {
		l, ok := hostLink(t, name)
		if !ok {
			t.Fatalf("veth %s not on the host after its creation", name)
		}
		macs[name] = l.Attrs().HardwareAddr.String()
	}
	return macs
}

// deleteHostLinks deletes the host links of these names that exist.
func deleteHostLinks(names ...string) {
	for _, n := range names {
		if l, err := netlinksafe.LinkByName(n); err == nil {
			_ = netlink.LinkDel(l)
		}
	}
}

// hostLink returns the host link named name, if there is one.
func hostLink(t testing.TB, name string) (netlink.Link, bool) {
	t.Helper()
	l, err := netlinksafe.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("looking up host link %s: %v", name, err)
	}
	return l, true
}

// waitBackOnHost waits until the link named name is on the host again, and checks that it
// is the same link (its MAC).
func (e *env) waitBackOnHost(t *testing.T, name, mac string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if l, ok := hostLink(t, name); ok {
			if got := l.Attrs().HardwareAddr.String(); got != mac {
				t.Errorf("host link %s has MAC %s, want %s (the link the pod had)", name, got, mac)
			}
			return
		}
	}
	t.Fatalf("%s is not back on the host (host links mnnic*: %v, net*: %v)\n%s", name,
		testbed.HostLinks(t, "mnnic"), testbed.HostLinks(t, "net"), e.c.MultinetLogs(t))
}

// multinetdPID is the PID of the node's multinetd process (the container's, found in /proc by
// its command line).
func multinetdPID(t *testing.T) int {
	t.Helper()
	var pids []int
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(cmdline), "/usr/local/bin/multinetd\x00") {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 1 {
		t.Fatalf("multinetd processes on the node: %v, want one", pids)
	}
	return pids[0]
}

// podRecords returns the names of multinetd's checkpoint records of the pod.
func podRecords(t *testing.T, namespace, name string) []string {
	t.Helper()
	dir := filepath.Join(multinetStateDir, "checkpoints")
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // removed since the listing
		}
		var sb checkpoint.Sandbox
		if json.Unmarshal(data, &sb) == nil && sb.PodNamespace == namespace && sb.PodName == name {
			out = append(out, e.Name())
		}
	}
	return out
}

// readRecords returns the content of multinetd's checkpoint records named, one a line.
func readRecords(t *testing.T, names []string) string {
	t.Helper()
	var out []string
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(multinetStateDir, "checkpoints", n))
		if err != nil {
			data = []byte(err.Error())
		}
		out = append(out, n+": "+string(data))
	}
	return strings.Join(out, "\n")
}

// preparedClaims reads the UIDs of the claims the NIC driver recorded as prepared.
func preparedClaims(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(nicStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Claims map[string]json.RawMessage `json:"claims"`
	}
	if err := json.Unmarshal(data, &state); err != nil {
		t.Fatalf("NIC driver state %s: %v", nicStateFile, err)
	}
	out := map[string]bool{}
	for uid := range state.Claims {
		out[uid] = true
	}
	return out
}

// waitPrepared waits, reading the driver's state every millisecond, until the claim uid is
// recorded as prepared: the driver writes it before it answers the kubelet, which creates
// the pod's sandbox (and so calls the ADD) only after that answer.
func waitPrepared(t *testing.T, uid string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if preparedClaims(t)[uid] {
			return
		}
	}
	t.Fatalf("claim %s never recorded as prepared in %s", uid, nicStateFile)
}

// waitUnprepared waits until the driver no longer records the claim uid as prepared (the
// kubelet unprepares a claim once no pod on the node uses it).
func waitUnprepared(t *testing.T, uid string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if !preparedClaims(t)[uid] {
			return
		}
	}
	t.Errorf("claim %s is still recorded as prepared in %s after its pod is gone", uid, nicStateFile)
}

// lockClusterIPAM takes host-local's lock of the cluster network, as host-local does (flock
// of its dir's "lock" file): the cluster network's ADD and DEL wait until the returned
// unlock, which t.Cleanup calls too.
func lockClusterIPAM(t *testing.T) (unlock func()) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(clusterIPAMDir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("locking %s: %v", f.Name(), err)
	}
	var once sync.Once
	unlock = func() {
		once.Do(func() {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			f.Close()
		})
	}
	t.Cleanup(unlock)
	return unlock
}

// deletePodAndWait deletes the pod and waits until it is gone; it needs no live test (it
// runs in t.Cleanup, whose test context is done).
func deletePodAndWait(c *testbed.Cluster, namespace, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := c.Client.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{})
	for ; err == nil; time.Sleep(250 * time.Millisecond) {
		_, err = c.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("pod %s/%s not gone: %w", namespace, name, err)
}

// waitPodGone waits until the deleted pod is gone (its sandbox DELed), failing with its
// Events and multinetd's log.
func (e *env) waitPodGone(t *testing.T, namespace, name string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		_, err := e.c.Client.CoreV1().Pods(namespace).Get(t.Context(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
	}
	t.Fatalf("pod %s/%s not gone after %s; events:\n%s\nmultinetd:\n%s", namespace, name, timeout,
		e.c.PodEvents(t, namespace, name), e.c.MultinetLogs(t))
}
