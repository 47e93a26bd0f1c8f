package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/testbed"
)

// tracePlugin installs a plugin type "trace": bridge, with a pause before it, that appends
// "start VERB IFNAME" and "done VERB IFNAME" to a trace file, so a test reads which delegate
// calls overlapped and in which order they ran. net1's ADD pauses longest: it finishes last.
func (e *env) tracePlugin(t *testing.T) string {
	t.Helper()
	trace := filepath.Join(e.Dir, "trace")
	e.scriptPlugin(t, "trace", fmt.Sprintf(`echo "start $CNI_COMMAND $CNI_IFNAME" >> %[1]s
case "$CNI_COMMAND $CNI_IFNAME" in "ADD net1") sleep 1.5 ;; ADD*|DEL*) sleep 0.8 ;; esac
%[2]s "$@"
rc=$?
echo "done $CNI_COMMAND $CNI_IFNAME" >> %[1]s
exit $rc
`, trace, e.bridgeBin()))
	return trace
}

// traceNAD creates NAD name of type trace on its own bridge mt<i> and subnet 10.10.2<i>.0/24.
func (e *env) traceNAD(t *testing.T, name string, i int, annotations map[string]string) {
	t.Helper()
	br := fmt.Sprintf("mt%d%s", i, e.ID)
	t.Cleanup(func() { testbed.DeleteLink(br) })
	conf := strings.Replace(e.bridgeNAD(name, br, fmt.Sprintf("10.10.2%d.0/24", i)), `"type":"bridge"`, `"type":"trace"`, 1)
	nad := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns, Annotations: annotations},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: conf},
	}
	if _, err := e.CP.NADClient.K8sCniCncfIoV1().NetworkAttachmentDefinitions(e.ns).Create(testbed.Ctx(t), nad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// traced reads the trace's lines for verb, without the verb: "start net1", "done net2", ...
func traced(t *testing.T, trace, verb string) []string {
	t.Helper()
	data, err := os.ReadFile(trace)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if what, ifname, ok := strings.Cut(line, " "+verb+" "); ok {
			out = append(out, what+" "+ifname)
		}
	}
	return out
}

// overlapped tells whether every interface of ifnames started before any of them was done.
func overlapped(events []string, ifnames ...string) bool {
	started := 0
	for _, ev := range events {
		what, ifname, _ := strings.Cut(ev, " ")
		if !slices.Contains(ifnames, ifname) {
			continue
		}
		if what == "done" {
			return started == len(ifnames)
		}
		started++
	}
	return false
}

// assertNoTraceVeths checks that the trace networks' bridges have no veth left.
func (e *env) assertNoTraceVeths(t *testing.T, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if v := testbed.VethsOn(t, fmt.Sprintf("mt%d%s", i, e.ID)); v != 0 {
			t.Errorf("%d veths left on trace network %d's bridge", v, i)
		}
	}
}

// testParallelOrder: three networks attached at once (their ADDs overlap; net1's finishes
// last) keep the annotation's interface names and network-status order; DEL runs them at
// once too, and leaves nothing.
func testParallelOrder(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	trace := e.tracePlugin(t)
	for i, name := range []string{"t1", "t2", "t3"} {
		e.traceNAD(t, name, i+1, nil)
	}
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "t1,t2,t3"})
	e.MustAdd(t, sb)
	if adds := traced(t, trace, "ADD"); !overlapped(adds, "net1", "net2", "net3") {
		t.Errorf("ADDs did not run at once: %v", adds)
	}
	if got, want := testbed.Links(t, sb.Netns), []string{"eth0", "net1", "net2", "net3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("interfaces %v, want %v", got, want)
	}
	st := e.NetworkStatus(t, sb, 4)
	for i, s := range st[1:] {
		ifname := fmt.Sprintf("net%d", i+1)
		if s.Name != fmt.Sprintf("%s/t%d", e.ns, i+1) || s.Interface != ifname || len(s.IPs) != 1 ||
			s.IPs[0] != testbed.IPv4(t, sb.Netns, ifname).String() {
			t.Errorf("network-status[%d] = %+v, want t%d on %s with its address", i+1, s, i+1, ifname)
		}
	}
	e.MustDel(t, sb)
	if dels := traced(t, trace, "DEL"); !overlapped(dels, "net1", "net2", "net3") {
		t.Errorf("DELs did not run at once: %v", dels)
	}
	e.assertNothingLeft(t, sb)
	e.assertNoTraceVeths(t, 3)
}

// testParallelRollback: the 2nd of 3 networks attached at once fails; the other two, the
// failing one and the cluster network are all DELed: nothing is left.
func testParallelRollback(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	t.Cleanup(func() { testbed.DeleteLink("mnx" + e.ID) })
	broken := `{"cniVersion":"1.0.0","name":"broken","plugins":[` + e.bridgeNAD("broken", "mnx"+e.ID, "10.10.9.0/24") +
		`,{"type":"tuning","sysctl":{"net.ipv4.conf.IFNAME.no_such_knob":"1"}}]}`
	cp.CreateNAD(t, e.ns, "broken", broken)
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "blue,broken,red"})
	_, err := e.Add(t, sb)
	if err == nil || !strings.Contains(err.Error(), "broken") || !strings.Contains(err.Error(), "no_such_knob") {
		t.Fatalf("ADD = %v, want the broken network's error", err)
	}
	e.assertNothingLeft(t, sb)
	if n := testbed.VethsOn(t, "mnx"+e.ID); n != 0 {
		t.Errorf("%d veths left on the broken network's bridge", n)
	}
	e.WaitEvent(t, sb.Pod, "NetworkSetupFailed")
}

// testDelPartiallyAttached: the 2nd of 3 networks attached at once leaves its interface and
// fails its ADD, then its rollback DEL fails once (code 11): the rollback removes everything
// else and keeps that attachment only; the runtime's DEL removes it.
func testDelPartiallyAttached(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	marker := filepath.Join(e.Dir, "half-del-failed")
	e.scriptPlugin(t, "half", fmt.Sprintf(`# bridge whose ADD does its work and then fails, and whose first DEL fails with "try again later".
if [ "$CNI_COMMAND" = ADD ]; then
  %[2]s >/dev/null
  echo '{"cniVersion":"1.0.0","code":11,"msg":"half: failed after the link"}'
  exit 1
fi
if [ "$CNI_COMMAND" = DEL ] && [ ! -e %[1]s ]; then
  touch %[1]s
  echo '{"cniVersion":"1.0.0","code":11,"msg":"half: not now"}'
  exit 1
fi
exec %[2]s
`, marker, e.bridgeBin()))
	e.scriptNAD(t, "half", "half", "mnk"+e.ID, "10.10.8.0/24")
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "blue,half,green"})
	if _, err := e.Add(t, sb); err == nil || !strings.Contains(err.Error(), "half: failed after the link") {
		t.Fatalf("ADD = %v, want the half network's error", err)
	}
	if got := testbed.Links(t, sb.Netns); !reflect.DeepEqual(got, []string{"net2"}) {
		t.Errorf("interfaces after the rollback %v, want only half's net2", got)
	}
	if rec := e.record(t, sb); len(rec.Attachments) != 1 || rec.Attachments[0].IfName != "net2" {
		t.Errorf("record after the rollback holds %+v, want half's attachment only", rec.Attachments)
	}
	if got := testbed.Allocations(t, e.IPAMDir); len(got) != 1 {
		t.Errorf("addresses after the rollback %v, want half's only", got)
	}
	e.assertNothingLeftAfterDel(t, sb)
	if n := testbed.VethsOn(t, "mnk"+e.ID); n != 0 {
		t.Errorf("%d veths left on half's bridge", n)
	}
}

// testKill9DuringParallelDelegates kills multinetd while two secondary delegates run at once
// (with them, or leaving them to complete), restarts it, and checks that the runtime's DEL
// leaves nothing: one durable intent write covered both before either ran.
func testKill9DuringParallelDelegates(t *testing.T, cp *testbed.ControlPlane) {
	for _, group := range []bool{true, false} {
		t.Run(map[bool]string{true: "DelegatesKilledToo", false: "DelegatesComplete"}[group], func(t *testing.T) {
			e := newEnv(t, cp)
			trace := e.tracePlugin(t)
			e.traceNAD(t, "t1", 1, nil)
			e.traceNAD(t, "t2", 2, nil)
			sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "t1,t2"})
			errc := make(chan error, 1)
			go func() { _, err := e.Add(t, sb); errc <- err }()
			e.waitIntent(t, sb, "t1")
			e.waitIntent(t, sb, "t2")
			for deadline := time.Now().Add(20 * time.Second); len(traced(t, trace, "ADD")) < 2; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the two delegates never started: %v\n%s", traced(t, trace, "ADD"), e.Log())
				}
			}
			if adds := traced(t, trace, "ADD"); !slices.Equal(adds, []string{"start net1", "start net2"}) &&
				!slices.Equal(adds, []string{"start net2", "start net1"}) {
				t.Fatalf("ADDs %v, want both started and neither done", adds)
			}
			if group {
				e.KillGroup9()
			} else {
				e.Kill9()
			}
			if err := <-errc; err == nil {
				t.Fatal("ADD succeeded although multinetd was killed during it")
			}
			if !group {
				for deadline := time.Now().Add(20 * time.Second); len(traced(t, trace, "ADD")) < 4; time.Sleep(20 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("the orphaned delegates never completed: %v", traced(t, trace, "ADD"))
					}
				}
				if len(testbed.Allocations(t, e.IPAMDir)) < 2 {
					t.Fatal("the orphaned delegates should have allocated addresses")
				}
			}
			e.Start(t)
			e.MustDel(t, sb)
			e.assertNothingLeft(t, sb)
			e.assertNoTraceVeths(t, 2)
		})
	}
}

// testSerialNAD: a NAD annotated multinet.io/attach: serial runs alone, after the networks
// attached at once, though first in the annotation; its interface name and network-status
// entry keep the annotation's order. DEL runs it alone, first.
func testSerialNAD(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	trace := e.tracePlugin(t)
	e.traceNAD(t, "solo", 1, map[string]string{"multinet.io/attach": "serial"})
	e.traceNAD(t, "t2", 2, nil)
	e.traceNAD(t, "t3", 3, nil)
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "solo,t2,t3"})
	e.MustAdd(t, sb)
	adds := traced(t, trace, "ADD")
	if !overlapped(adds, "net2", "net3") || len(adds) != 6 || adds[4] != "start net1" || adds[5] != "done net1" {
		t.Errorf("ADDs %v, want net2 and net3 at once, then net1 alone", adds)
	}
	st := e.NetworkStatus(t, sb, 4)
	for i, want := range []string{"solo", "t2", "t3"} {
		if s := st[i+1]; s.Name != e.ns+"/"+want || s.Interface != fmt.Sprintf("net%d", i+1) {
			t.Errorf("network-status[%d] = %s on %s, want %s on net%d", i+1, s.Name, s.Interface, want, i+1)
		}
	}
	e.MustDel(t, sb)
	if dels := traced(t, trace, "DEL"); len(dels) != 6 || dels[0] != "start net1" || dels[1] != "done net1" || !overlapped(dels, "net2", "net3") {
		t.Errorf("DELs %v, want net1 alone, then net2 and net3 at once", dels)
	}
	e.assertNothingLeft(t, sb)
	e.assertNoTraceVeths(t, 3)
}

// testParallelAttachOff: with --parallel-attach=false the delegates run one after another, in
// the annotation's order, and DEL in reverse.
func testParallelAttachOff(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp, "--parallel-attach=false")
	trace := e.tracePlugin(t)
	e.traceNAD(t, "t1", 1, nil)
	e.traceNAD(t, "t2", 2, nil)
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "t1,t2"})
	e.MustAdd(t, sb)
	e.MustDel(t, sb)
	if adds, want := traced(t, trace, "ADD"), []string{"start net1", "done net1", "start net2", "done net2"}; !slices.Equal(adds, want) {
		t.Errorf("ADDs %v, want %v", adds, want)
	}
	if dels, want := traced(t, trace, "DEL"), []string{"start net2", "done net2", "start net1", "done net1"}; !slices.Equal(dels, want) {
		t.Errorf("DELs %v, want %v", dels, want)
	}
	e.assertNothingLeft(t, sb)
}
