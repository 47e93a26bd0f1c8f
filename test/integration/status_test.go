package integration

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/testbed"
)

// TestNetworkStatus: the network-status annotation ends right although its write is
// interrupted — by a SIGTERM while an ADD is in flight, by an API outage longer than the
// patcher's give-up time. These tests stop the API server: they have a control plane of their
// own.
func TestNetworkStatus(t *testing.T) {
	testbed.RequireRoot(t)
	cp := testbed.StartControlPlane(t)
	for _, c := range []struct {
		name string
		f    func(*testing.T, *testbed.ControlPlane)
	}{
		{"SIGTERMDuringAddDrains", testSIGTERMDuringAddDrains},
		{"SIGTERMWithAPIDownWrittenAfterRestart", testSIGTERMWithAPIDownWrittenAfterRestart},
		{"APIOutageLongerThanGiveUp", func(t *testing.T, cp *testbed.ControlPlane) { testAPIOutageLongerThanGiveUp(t, cp) }},
		{"APIOutageLongerThanGiveUpHotplugOff", func(t *testing.T, cp *testbed.ControlPlane) {
			testAPIOutageLongerThanGiveUp(t, cp, "--hotplug=false")
		}},
		{"RightAnnotationCostsNoRequest", testRightAnnotationCostsNoRequest},
	} {
		t.Run(c.name, func(t *testing.T) { c.f(t, cp) })
	}
}

// addHeld starts the runtime's ADD of a pod on the network "slow", whose plugin waits for
// the returned release once the ADD has planned (the pod read, the intent recorded). done
// yields the ADD's error.
func (e *env) addHeld(t *testing.T) (sb *testbed.Sandbox, release func(), done <-chan error) {
	t.Helper()
	started, file := e.slowNetwork(t, "slow", "s", "10.10.13.0/24", "ADD")
	sb = e.NewSandbox(t, e.ns, "p", map[string]string{networks: "slow"})
	errc := make(chan error, 1)
	go func() { _, err := e.Add(t, sb); errc <- err }()
	waitFile(t, started)
	return sb, func() { touch(t, file) }, errc
}

// stopDuring sends multinetd SIGTERM while an ADD is held, releases the ADD once the daemon
// has stopped accepting requests, and waits until the ADD has succeeded and the daemon exited.
func (e *env) stopDuring(t *testing.T, release func(), added <-chan error) {
	t.Helper()
	stopped := make(chan struct{})
	go func() { e.Stop(); close(stopped) }()
	for deadline := time.Now().Add(20 * time.Second); e.accepting(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("multinetd still accepts requests after SIGTERM\n%s", e.Log())
		}
	}
	release()
	if err := <-added; err != nil {
		t.Fatalf("ADD in flight at SIGTERM: %v\n%s", err, e.Log())
	}
	<-stopped
}

// accepting reports whether multinetd's socket takes connections.
func (e *env) accepting() bool {
	c, err := net.Dial("unix", e.Socket)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// heldStatus is the network-status of a pod ADDed by addHeld: interface -> network.
func (e *env) heldStatus() map[string]string {
	return map[string]string{"eth0": "cluster", "net1": e.ns + "/slow"}
}

// statusNow is the pod's network-status as the API server has it now (interface ->
// network), and the raw value.
func (e *env) statusNow(t *testing.T, sb *testbed.Sandbox) (map[string]string, string) {
	t.Helper()
	pod, err := e.CP.Client.CoreV1().Pods(sb.Pod.Namespace).Get(testbed.Ctx(t), sb.Pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw := pod.Annotations[nadv1.NetworkStatusAnnot]
	var st []nadv1.NetworkStatus
	_ = json.Unmarshal([]byte(raw), &st)
	got := map[string]string{}
	for _, s := range st {
		got[s.Interface] = s.Name
	}
	return got, raw
}

// waitLog waits until multinetd's log (all of it, restarts included) has a line with msg.
func (e *env) waitLog(t *testing.T, msg string) {
	t.Helper()
	path := filepath.Join(e.Dir, "multinetd.log")
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if data, err := os.ReadFile(path); err == nil && strings.Contains(string(data), `"msg":"`+msg) {
			return
		}
	}
	t.Fatalf("multinetd never logged %q\n%s", msg, e.Log())
}

// stopAPIServer stops the API server until the test starts it again (or ends).
func stopAPIServer(t *testing.T, cp *testbed.ControlPlane) (start func()) {
	t.Helper()
	cp.StopAPIServer(t)
	down := true
	start = func() {
		if down {
			cp.StartAPIServer(t)
			down = false
		}
	}
	t.Cleanup(start)
	return start
}

// testSIGTERMDuringAddDrains: multinetd gets SIGTERM while an ADD is in flight. The ADD
// completes, and the daemon writes its network-status before it exits: the pod has it as soon
// as the daemon is gone, with nobody left to write it.
func testSIGTERMDuringAddDrains(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	sb, release, added := e.addHeld(t)
	e.stopDuring(t, release, added)
	if got, raw := e.statusNow(t, sb); !reflect.DeepEqual(got, e.heldStatus()) {
		t.Fatalf("network-status once multinetd exited: %q, want %v\n%s", raw, e.heldStatus(), e.Log())
	}
	e.Start(t)
	e.MustDel(t, sb)
	e.assertClean(t)
}

// testSIGTERMWithAPIDownWrittenAfterRestart: the API server is down when multinetd stops with
// an ADD in flight: the drain gives up at its deadline and says so; the daemon started again
// (API back) writes the network-status from the record, with no edit of the pod.
func testSIGTERMWithAPIDownWrittenAfterRestart(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp, "--status-drain-timeout", "1s")
	sb, release, added := e.addHeld(t)
	startAPI := stopAPIServer(t, cp)
	e.stopDuring(t, release, added)
	e.waitLog(t, "stopping with network-status not written")
	startAPI()
	if got, raw := e.statusNow(t, sb); len(got) != 0 {
		t.Fatalf("network-status %q written although the API server was down", raw)
	}
	e.Start(t)
	e.statusOf(t, sb, e.heldStatus())
	e.MustDel(t, sb)
	e.assertClean(t)
}

// testAPIOutageLongerThanGiveUp: an ADD completes while the API server is down; multinetd
// gives up writing its network-status (give-up time 1 s here, 10 minutes by default). Once the
// API server is back, the resync (1 s here, 5 minutes by default) finds the pod's annotation
// differing from the record and writes it: no edit of the pod, no restart. With hot plug off
// too (flags).
func testAPIOutageLongerThanGiveUp(t *testing.T, cp *testbed.ControlPlane, flags ...string) {
	e := newEnv(t, cp, append([]string{"--status-give-up-after", "1s", "--resync-interval", "1s"}, flags...)...)
	sb, release, added := e.addHeld(t)
	startAPI := stopAPIServer(t, cp)
	release()
	if err := <-added; err != nil {
		t.Fatalf("ADD with the API server down (pod and NAD in the caches): %v\n%s", err, e.Log())
	}
	e.waitLog(t, "giving up on network-status")
	startAPI()
	e.statusOf(t, sb, e.heldStatus())
	e.MustDel(t, sb)
	e.assertClean(t)
}

// testRightAnnotationCostsNoRequest: the resync compares each pod's network-status with the
// record on the informer's copy: a pod whose annotation is right gets no request, however many
// passes run (1 s apart here).
func testRightAnnotationCostsNoRequest(t *testing.T, cp *testbed.ControlPlane) {
	addr := freeAddr(t)
	e := newEnv(t, cp, "--metrics-address", addr, "--resync-interval", "1s")
	e.threeNetworks(t)
	sb := e.hotplugged(t, "p", "blue")
	e.statusOf(t, sb, map[string]string{"eth0": "cluster", "net1": e.ns + "/blue"})
	// Two passes, so that the informer has the written value (it gets it within milliseconds).
	e.waitReconciles(t, addr, 2)
	before := sumMetric(t, addr, `multinet_api_requests_total{`, `method="PATCH"`)
	e.waitReconciles(t, addr, 3)
	if after := sumMetric(t, addr, `multinet_api_requests_total{`, `method="PATCH"`); after != before {
		t.Errorf("%v PATCH requests during three passes over a pod whose network-status is right, want none\n%s", after-before, e.Log())
	}
	if data, err := os.ReadFile(filepath.Join(e.Dir, "multinetd.log")); err != nil || strings.Contains(string(data), "writing it again") {
		t.Errorf("network-status written again although it was right (log read: %v)\n%s", err, e.Log())
	}
	e.MustDel(t, sb)
	e.assertClean(t)
}

// waitReconciles waits until multinetd has made n more passes over the node's pods (each
// pass reconciles every pod of the node) than when it was called.
func (e *env) waitReconciles(t *testing.T, addr string, n int) {
	t.Helper()
	const count = `multinet_hotplug_reconcile_duration_seconds_count{`
	pods, err := e.CP.Client.CoreV1().Pods("").List(testbed.Ctx(t), metav1.ListOptions{FieldSelector: "spec.nodeName=" + testbed.NodeName})
	if err != nil {
		t.Fatal(err)
	}
	want := sumMetric(t, addr, count, "") + float64(n*len(pods.Items))
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if sumMetric(t, addr, count, "") >= want {
			return
		}
	}
	t.Fatalf("multinetd did not make %d passes over the node's %d pods in 20s\n%s", n, len(pods.Items), e.Log())
}

// sumMetric adds up multinetd's samples whose name and labels start with prefix and whose
// labels contain label.
func sumMetric(t *testing.T, addr, prefix, label string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		sample, v, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(sample, prefix) || !strings.Contains(sample, label) {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += f
	}
	return sum
}
