package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/testbed"
)

// assertNothingLeft is assertClean plus the pod's own side: no interface in its netns, no
// result cached by the delegates, and a DEL that succeeds (the runtime's, after a failure).
func (e *env) assertNothingLeft(t *testing.T, sb *testbed.Sandbox) {
	t.Helper()
	if got := testbed.Links(t, sb.Netns); len(got) != 0 {
		t.Errorf("interfaces left in the pod: %v", got)
	}
	if got, _ := filepath.Glob(filepath.Join(e.StateDir, "cache", "results", "*"+sb.ID+"*")); len(got) != 0 {
		t.Errorf("delegate results left in the cache: %v", got)
	}
	e.assertClean(t)
	e.MustDel(t, sb)
}

// record reads the sandbox's checkpoint record.
func (e *env) record(t *testing.T, sb *testbed.Sandbox) *checkpoint.Sandbox {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.StateDir, "checkpoints", sb.ID+".json"))
	if err != nil {
		t.Fatalf("checkpoint record of %s: %v", sb.ID, err)
	}
	var rec checkpoint.Sandbox
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	return &rec
}

// failedAddLeavesNothing creates a pod on blue and a network whose delegate fails its ADD and
// its DEL alike, and checks that the ADD fails with the delegate's text, rolls back the
// cluster network too, drops the failed attachment with an Event, and leaves nothing.
func (e *env) failedAddLeavesNothing(t *testing.T, annotation string, want ...string) {
	t.Helper()
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: annotation})
	_, err := e.Add(t, sb)
	if err == nil {
		t.Fatal("ADD succeeded")
	}
	for _, w := range append([]string{e.ns + "/p"}, want...) {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("ADD error %q does not mention %q", err, w)
		}
	}
	e.assertNothingLeft(t, sb)
	for _, ev := range e.WaitEvent(t, sb.Pod, "AttachmentDropped") {
		if ev.Reason == "AttachmentDropped" && (ev.Type != "Warning" || !strings.Contains(ev.Message, want[0]) || !strings.Contains(ev.Message, want[1])) {
			t.Errorf("AttachmentDropped %s %q does not name the network and the delegate's text %q", ev.Type, ev.Message, want)
		}
	}
}

// testUnsupportedCNIVersion: a NAD whose cniVersion the plugin does not support fails its ADD
// and its DEL; the pod's eth0 and blue are rolled back all the same.
func testUnsupportedCNIVersion(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	t.Cleanup(func() { testbed.DeleteLink("mnv" + e.ID) })
	conf := strings.Replace(e.bridgeNAD("future", "mnv"+e.ID, "10.10.8.0/24"), `"cniVersion":"1.0.0"`, `"cniVersion":"9.9.9"`, 1)
	cp.CreateNAD(t, e.ns, "future", conf)
	e.failedAddLeavesNothing(t, "blue,future", e.ns+"/future", "incompatible CNI versions")
}

// testArgsThePluginCannotParse: per-pod arguments host-local cannot parse fail its ADD and its
// DEL with the same error (code 999): the attachment is dropped, the rest rolled back.
func testArgsThePluginCannotParse(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	e.failedAddLeavesNothing(t, `[{"name":"blue"},{"name":"green","cni-args":{"ips":["not-an-ip"]}}]`,
		e.ns+"/green", "not-an-ip")
}

// testIPAMTypeWithAPathRefused: an ipam "type" that is not a plain name is refused before
// anything is attached (the plugin would run that path as root).
func testIPAMTypeWithAPathRefused(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	conf := strings.Replace(e.bridgeNAD("pathy", "mnp"+e.ID, "10.10.8.0/24"), `"type":"host-local"`, `"type":"../bin/host-local"`, 1)
	cp.CreateNAD(t, e.ns, "pathy", conf)
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "blue,pathy"})
	_, err := e.Add(t, sb)
	if err == nil || !strings.Contains(err.Error(), "pathy") || !strings.Contains(err.Error(), "ipam: type") {
		t.Fatalf("ADD with ipam type ../bin/host-local = %v, want a refusal naming the network and the ipam type", err)
	}
	e.WaitEvent(t, sb.Pod, "InvalidNetworkSelection")
	e.assertNothingLeft(t, sb)
}

// testDelegateBinaryRemoved: red's plugin (macvlan) is gone between ADD and DEL. DEL fails
// naming it, but tears down everything else; with the binary back, the next DEL finishes.
func testDelegateBinaryRemoved(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "blue,red"})
	e.MustAdd(t, sb)
	bin := filepath.Join(e.BinDir, "macvlan")
	target, err := os.Readlink(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	err = e.Del(t, sb)
	if err == nil || !strings.Contains(err.Error(), "/red") || !strings.Contains(err.Error(), "macvlan") {
		t.Fatalf("DEL without the macvlan binary = %v, want an error naming network red and the plugin", err)
	}
	if got := testbed.Links(t, sb.Netns); !reflect.DeepEqual(got, []string{"net2"}) {
		t.Errorf("interfaces after the failed DEL %v, want only red's net2", got)
	}
	if rec := e.record(t, sb); len(rec.Attachments) != 1 || rec.Attachments[0].IfName != "net2" {
		t.Errorf("record after the failed DEL holds %+v, want red's attachment only", rec.Attachments)
	}
	if got := testbed.Allocations(t, e.IPAMDir); len(got) != 1 {
		t.Errorf("addresses after the failed DEL %v, want red's only", got)
	}
	if err := os.Symlink(target, bin); err != nil {
		t.Fatal(err)
	}
	e.assertNothingLeftAfterDel(t, sb)
}

// assertNothingLeftAfterDel runs the runtime's DEL, then assertNothingLeft.
func (e *env) assertNothingLeftAfterDel(t *testing.T, sb *testbed.Sandbox) {
	t.Helper()
	e.MustDel(t, sb)
	e.assertNothingLeft(t, sb)
}

// testDelegateFailsDelOnce: a plugin whose first DEL fails (code 11) and then succeeds: the
// first DEL removes everything else and keeps its record only; the second finishes.
func testDelegateFailsDelOnce(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	marker := filepath.Join(e.Dir, "flaky-failed-once")
	e.scriptPlugin(t, "flaky", fmt.Sprintf(`# A bridge plugin whose first DEL fails with "try again later".
if [ "$CNI_COMMAND" = DEL ] && [ ! -e %[1]s ]; then
  touch %[1]s
  echo '{"cniVersion":"1.0.0","code":11,"msg":"flaky: not now"}'
  exit 1
fi
exec %[2]s
`, marker, e.bridgeBin()))
	e.scriptNAD(t, "flaky", "flaky", "mnk"+e.ID, "10.10.8.0/24")
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: "blue,flaky"})
	e.MustAdd(t, sb)
	err := e.Del(t, sb)
	if err == nil || !strings.Contains(err.Error(), "flaky: not now") {
		t.Fatalf("first DEL = %v, want the plugin's failure", err)
	}
	if got := testbed.Links(t, sb.Netns); !reflect.DeepEqual(got, []string{"net2"}) {
		t.Errorf("interfaces after the failed DEL %v, want only flaky's net2", got)
	}
	if rec := e.record(t, sb); len(rec.Attachments) != 1 || rec.Attachments[0].IfName != "net2" {
		t.Errorf("record after the failed DEL holds %+v, want flaky's attachment only", rec.Attachments)
	}
	e.WaitEvent(t, sb.Pod, "NetworkTeardownFailed")
	e.assertNothingLeftAfterDel(t, sb)
	if n := testbed.VethsOn(t, "mnk"+e.ID); n != 0 {
		t.Errorf("%d veths left on flaky's bridge", n)
	}
}

// testDualStackIPsAndDefaultRoutes: ips of both families reach host-local (as args.cni.ips, not
// CNI_ARGS IP=, which holds one address), and default-route moves both families' defaults.
func testDualStackIPsAndDefaultRoutes(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	t.Cleanup(func() { testbed.DeleteLink("mn6" + e.ID) })
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"dual","type":"bridge","bridge":"mn6%s","isGateway":false,
		"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.10.7.0/24"}],[{"subnet":"fd00:10:7::/64"}]]}}`, e.ID, e.IPAMDir)
	cp.CreateNAD(t, e.ns, "dual", conf)
	sb := e.NewSandbox(t, e.ns, "p", map[string]string{networks: `[{"name":"dual","ips":["10.10.7.42/24","fd00:10:7::42/64"],` +
		`"default-route":["10.10.7.1","fd00:10:7::1"]}]`})
	e.MustAdd(t, sb)
	st := e.NetworkStatus(t, sb, 2)
	if !slices.Equal(st[1].IPs, []string{"10.10.7.42", "fd00:10:7::42"}) || !st[1].Default || st[0].Default {
		t.Errorf("network-status %+v, want net1 with both requested addresses, default", st)
	}
	err := sb.Netns.Do(func(ns.NetNS) error {
		link, err := netlinksafe.LinkByName("net1")
		if err != nil {
			return err
		}
		for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			routes, err := netlinksafe.RouteListFiltered(family, &netlink.Route{}, 0)
			if err != nil {
				return err
			}
			found := false
			for _, r := range routes {
				if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw != nil {
					found = true
					if r.LinkIndex != link.Attrs().Index {
						t.Errorf("family %d: default route via %s on link %d, want net1", family, r.Gw, r.LinkIndex)
					}
				}
			}
			if !found {
				t.Errorf("family %d: no default route", family)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.MustDel(t, sb)
	if got := testbed.Allocations(t, e.IPAMDir); len(got) != 0 {
		t.Errorf("addresses leaked: %v", got)
	}
}
