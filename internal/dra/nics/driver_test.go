package nics

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
)

const testNode = "node-a"

// newTestDriver returns a driver over the state in dir that sees the host links named.
func newTestDriver(t *testing.T, dir string, links ...string) *Driver {
	t.Helper()
	state, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDriver(DefaultDriver, testNode, state)
	setHostLinks(d, links...)
	return d
}

func setHostLinks(d *Driver, links ...string) {
	var devs []resourceapi.Device
	for _, l := range links {
		devs = append(devs, NIC{Link: Link{Name: l, MTU: 1500}}.Device("example.com/nic"))
	}
	d.SetHost(devs)
}

type alloc struct{ request, driver, pool, device string }

func claimOf(uid, name string, allocs ...alloc) *resourceapi.ResourceClaim {
	c := &resourceapi.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(uid)}}
	c.Status.Allocation = &resourceapi.AllocationResult{}
	for _, a := range allocs {
		c.Status.Allocation.Devices.Results = append(c.Status.Allocation.Devices.Results,
			resourceapi.DeviceRequestAllocationResult{Request: a.request, Driver: a.driver, Pool: a.pool, Device: a.device})
	}
	return c
}

func prepare(t *testing.T, d *Driver, claims ...*resourceapi.ResourceClaim) map[types.UID]kubeletplugin.PrepareResult {
	t.Helper()
	res, err := d.PrepareResourceClaims(context.Background(), claims)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(claims) {
		t.Fatalf("%d results for %d claims", len(res), len(claims))
	}
	return res
}

func unprepare(t *testing.T, d *Driver, uids ...string) {
	t.Helper()
	var objs []kubeletplugin.NamespacedObject
	for _, u := range uids {
		objs = append(objs, kubeletplugin.NamespacedObject{UID: types.UID(u), NamespacedName: types.NamespacedName{Namespace: "ns", Name: "c-" + u}})
	}
	res, err := d.UnprepareResourceClaims(context.Background(), objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range uids {
		if e, ok := res[types.UID(u)]; !ok || e != nil {
			t.Fatalf("unprepare %s: present %v, error %v", u, ok, e)
		}
	}
}

func publishedNames(d *Driver) []string {
	out := []string{}
	for _, s := range d.Resources().Pools[testNode].Slices {
		for _, dev := range s.Devices {
			out = append(out, dev.Name)
		}
	}
	return out
}

func TestPrepareTwiceGivesTheSameAnswer(t *testing.T) {
	d := newTestDriver(t, t.TempDir(), "mnt-nic0", "mnt-nic1")
	claim := claimOf("u1", "c-u1",
		alloc{"nic", DefaultDriver, testNode, "mnt-nic1"},
		alloc{"gpu", "gpu.example.com", testNode, "gpu0"}, // another driver's device: not ours
	)
	first := prepare(t, d, claim)["u1"]
	want := kubeletplugin.PrepareResult{Devices: []kubeletplugin.Device{{Requests: []string{"nic"}, PoolName: testNode, DeviceName: "mnt-nic1"}}}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("first prepare: %+v, want %+v", first, want)
	}
	setHostLinks(d, "mnt-nic0") // the delegate moved mnt-nic1 into the pod
	if second := prepare(t, d, claim)["u1"]; !reflect.DeepEqual(second, first) {
		t.Fatalf("second prepare: %+v, want %+v", second, first)
	}
}

func TestPreparedDeviceStaysPublishedUntilUnprepare(t *testing.T) {
	d := newTestDriver(t, t.TempDir(), "mnt-nic0", "mnt-nic1")
	prepare(t, d, claimOf("u1", "c-u1", alloc{"nic", DefaultDriver, testNode, "mnt-nic1"}))
	setHostLinks(d, "mnt-nic0")
	if got := publishedNames(d); !reflect.DeepEqual(got, []string{"mnt-nic0", "mnt-nic1"}) {
		t.Fatalf("published while in the pod: %v", got)
	}
	unprepare(t, d, "u1")
	if got := publishedNames(d); !reflect.DeepEqual(got, []string{"mnt-nic0"}) {
		t.Fatalf("published after unprepare with the link not back: %v", got)
	}
	unprepare(t, d, "u1", "never-prepared") // idempotent, unknown claims are no error
}

func TestPrepareSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	d := newTestDriver(t, dir, "mnt-nic0", "mnt-nic1")
	claim := claimOf("u1", "c-u1", alloc{"nic", DefaultDriver, testNode, "mnt-nic0"})
	first := prepare(t, d, claim)["u1"]

	// The restarted driver sees mnt-nic0 in a pod, not on the host.
	restarted := newTestDriver(t, dir, "mnt-nic1")
	if got := publishedNames(restarted); !reflect.DeepEqual(got, []string{"mnt-nic0", "mnt-nic1"}) {
		t.Fatalf("published after restart: %v", got)
	}
	if again := prepare(t, restarted, claim)["u1"]; !reflect.DeepEqual(again, first) {
		t.Fatalf("prepare after restart: %+v, want %+v", again, first)
	}
	other := prepare(t, restarted, claimOf("u2", "c-u2", alloc{"nic", DefaultDriver, testNode, "mnt-nic0"}))["u2"]
	if !errors.Is(other.Err, ErrDeviceUnavailable) {
		t.Fatalf("a second claim on mnt-nic0 after restart: %v, want ErrDeviceUnavailable", other.Err)
	}
	unprepare(t, restarted, "u1")
	if _, ok := newTestDriver(t, dir).state.Get("u1"); ok {
		t.Fatal("the unprepared claim came back after another restart")
	}
}

func TestPrepareRefusesUnavailableDevices(t *testing.T) {
	d := newTestDriver(t, t.TempDir(), "mnt-nic0", "mnt-nic1")
	prepare(t, d, claimOf("u1", "c-u1", alloc{"nic", DefaultDriver, testNode, "mnt-nic0"}))
	for _, tc := range []struct {
		name  string
		claim *resourceapi.ResourceClaim
	}{
		{"held by another claim", claimOf("u2", "c-u2", alloc{"nic", DefaultDriver, testNode, "mnt-nic0"})},
		{"not on the host", claimOf("u3", "c-u3", alloc{"nic", DefaultDriver, testNode, "mnt-nic9"})},
		{"another node's pool", claimOf("u4", "c-u4", alloc{"nic", DefaultDriver, "node-b", "mnt-nic0"})},
		{"admin access", adminClaim("u5", "mnt-nic1")},
	} {
		res := prepare(t, d, tc.claim)[tc.claim.UID]
		if !errors.Is(res.Err, ErrDeviceUnavailable) {
			t.Errorf("%s: %+v, want ErrDeviceUnavailable", tc.name, res)
		}
		if _, ok := d.state.Get(tc.claim.UID); ok {
			t.Errorf("%s: the refused claim was recorded", tc.name)
		}
	}
}

func TestStateRefusesAnotherVersion(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"version":2,"claims":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(dir); err == nil {
		t.Fatal("a state file of version 2 was accepted")
	}
}

func TestResourcesSplitsLargePools(t *testing.T) {
	d := newTestDriver(t, t.TempDir())
	var links []string
	for i := range resourceapi.ResourceSliceMaxDevices + 3 {
		links = append(links, DeviceName(string(rune('a'+i%26))+"-"+string(rune('0'+i/26))))
	}
	setHostLinks(d, links...)
	slices := d.Resources().Pools[testNode].Slices
	if len(slices) != 2 || len(slices[0].Devices) != resourceapi.ResourceSliceMaxDevices || len(slices[1].Devices) != 3 {
		t.Fatalf("%d slices", len(slices))
	}
	if empty := newTestDriver(t, t.TempDir()).Resources().Pools[testNode].Slices; len(empty) != 1 || len(empty[0].Devices) != 0 {
		t.Fatalf("a node without NICs publishes %+v, want one empty slice", empty)
	}
}

func adminClaim(uid, device string) *resourceapi.ResourceClaim {
	c := claimOf(uid, "c-"+uid, alloc{"nic", DefaultDriver, testNode, device})
	yes := true
	c.Status.Allocation.Devices.Results[0].AdminAccess = &yes
	return c
}
