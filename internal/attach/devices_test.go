package attach

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/dra/claims"
	"github.com/multinet/multinet/internal/plan"
)

// fakeClaims serves claims and slices from memory and records the status applies.
type fakeClaims struct {
	claims map[string]*resourcev1.ResourceClaim // by name, namespace "ns"
	slices []*resourcev1.ResourceSlice

	mu      sync.Mutex
	applied map[string][]resourcev1.AllocatedDeviceStatus // by claim name, the last apply
	fail    error
}

func (f *fakeClaims) ResourceClaim(_ context.Context, _, name string) (*resourcev1.ResourceClaim, error) {
	if c, ok := f.claims[name]; ok {
		return c, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: "resource.k8s.io", Resource: "resourceclaims"}, name)
}

func (f *fakeClaims) ResourceSlices(context.Context, string) ([]*resourcev1.ResourceSlice, error) {
	return f.slices, nil
}

func (f *fakeClaims) ApplyStatus(_ context.Context, claim claims.ClaimRef, entries []resourcev1.AllocatedDeviceStatus) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if f.applied == nil {
		f.applied = map[string][]resourcev1.AllocatedDeviceStatus{}
	}
	f.applied[claim.Name] = entries
	return nil
}

const testDriver = "nic.multinet.io"

// nicWorld is pod ns/p with claims "a" (device nic-a, link "mnnic0a") and "b" (device nic-b,
// link "mnnic0b", with a PCI address), both of resourceName multinet.io/nic, and a manager
// using them.
func nicWorld(t *testing.T) (*Manager, *fakeClaims, *fakeEvents, *corev1.Pod) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u"}}
	f := &fakeClaims{claims: map[string]*resourcev1.ResourceClaim{}}
	for _, c := range []struct{ name, device string }{{"a", "nic-a"}, {"b", "nic-b"}} {
		pod.Spec.ResourceClaims = append(pod.Spec.ResourceClaims, corev1.PodResourceClaim{Name: c.name, ResourceClaimName: &c.name})
		claim := &resourcev1.ResourceClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: c.name, UID: k8stypes.UID(c.name + "-uid"), Generation: 3}}
		claim.Status.Allocation = &resourcev1.AllocationResult{Devices: resourcev1.DeviceAllocationResult{
			Results: []resourcev1.DeviceRequestAllocationResult{{Request: "nic", Driver: testDriver, Pool: "node-a", Device: c.device}}}}
		claim.Status.ReservedFor = []resourcev1.ResourceClaimConsumerReference{{Resource: "pods", Name: "p", UID: "u"}}
		f.claims[c.name] = claim
	}
	str := func(s string) resourcev1.DeviceAttribute { return resourcev1.DeviceAttribute{StringValue: &s} }
	node := "node-a"
	f.slices = []*resourcev1.ResourceSlice{{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a-nics"},
		Spec: resourcev1.ResourceSliceSpec{Driver: testDriver, NodeName: &node,
			Pool: resourcev1.ResourcePool{Name: "node-a", Generation: 1, ResourceSliceCount: 1},
			Devices: []resourcev1.Device{
				{Name: "nic-a", Attributes: map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{
					"ifName": str("mnnic0a"), claims.AttrResourceName: str("multinet.io/nic")}},
				{Name: "nic-b", Attributes: map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{
					"ifName": str("mnnic0b"), "pciAddress": str("0000:3b:00.1"), claims.AttrResourceName: str("multinet.io/nic")}},
			}},
	}}
	ev := &fakeEvents{}
	m := New(Config{}, Deps{Claims: f, Events: ev, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return m, f, ev, pod
}

// hostDevice is a delegate of a device-backed network whose host-device plugin names no
// device.
func hostDevice(network, ifname string) plan.Delegate {
	return plan.Delegate{Network: network, IfName: ifname, ResourceName: "multinet.io/nic",
		ConfList: []byte(`{"cniVersion":"1.0.0","name":"nics","plugins":[{"type":"host-device","ipam":{"type":"static"}}]}`)}
}

func TestResolveDevicesPointsEachDelegateAtItsDevice(t *testing.T) {
	m, _, _, pod := nicWorld(t)
	plain := plan.Delegate{Network: "ns/plain", IfName: "net1", ConfList: []byte(`{"cniVersion":"1.0.0","name":"plain","plugins":[{"type":"macvlan"}]}`)}
	ds := []plan.Delegate{plain, hostDevice("ns/nics", "net2"), hostDevice("ns/nics", "net3")}
	if err := m.resolveDevices(context.Background(), pod, ds); err != nil {
		t.Fatal(err)
	}
	if string(ds[0].ConfList) != string(plain.ConfList) || ds[0].Meta != nil {
		t.Errorf("a network without resourceName changed: %s %v", ds[0].ConfList, ds[0].Meta)
	}
	for i, want := range []struct{ link, claim, device, pci string }{{"mnnic0a", "a", "nic-a", ""}, {"mnnic0b", "b", "nic-b", "0000:3b:00.1"}} {
		d := ds[i+1]
		var conf struct {
			Plugins []map[string]any `json:"plugins"`
		}
		if err := json.Unmarshal(d.ConfList, &conf); err != nil {
			t.Fatal(err)
		}
		if got := conf.Plugins[0]["device"]; got != want.link {
			t.Errorf("%s: host-device device %v, want %s (conf %s)", d.IfName, got, want.link, d.ConfList)
		}
		a := checkpoint.Attachment{Meta: d.Meta}
		r, ok := recordedDevice(&a)
		if !ok || r.Claim != want.claim || r.ClaimNamespace != "ns" || r.ClaimUID != want.claim+"-uid" || r.Device != want.device ||
			r.Driver != testDriver || r.Pool != "node-a" || r.Generation != 3 || r.PCIAddress != want.pci {
			t.Errorf("%s: recorded device %+v (%v)", d.IfName, r, ok)
		}
		info := deviceInfo(&a)
		if (want.pci == "") != (info == nil) || (info != nil && (info.Type != "pci" || info.Pci == nil || info.Pci.PciAddress != want.pci)) {
			t.Errorf("%s: device-info %+v, want PCI %q", d.IfName, info, want.pci)
		}
	}
}

func TestResolveDevicesFaults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     func(*fakeClaims, *corev1.Pod)
		n        int  // device-backed attachments
		tryAgain bool // the runtime should retry the sandbox
		mention  string
	}{
		{"claim not allocated", func(f *fakeClaims, _ *corev1.Pod) {
			f.claims["a"].Status.Allocation, f.claims["a"].Status.ReservedFor = nil, nil
		}, 1, true, "ns/a"},
		{"claim not created yet", func(f *fakeClaims, _ *corev1.Pod) { delete(f.claims, "a") }, 1, true, "ns/a"},
		{"device in no slice", func(f *fakeClaims, _ *corev1.Pod) { f.slices[0].Spec.Devices = f.slices[0].Spec.Devices[1:] }, 1, true, "nic-a"},
		{"more attachments than devices", func(*fakeClaims, *corev1.Pod) {}, 3, false, "multinet.io/nic"},
		{"no claim provides it", func(f *fakeClaims, _ *corev1.Pod) {
			for _, d := range f.slices[0].Spec.Devices {
				s := "other"
				d.Attributes[claims.AttrResourceName] = resourcev1.DeviceAttribute{StringValue: &s}
			}
		}, 1, false, "multinet.io/nic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, f, _, pod := nicWorld(t)
			tc.edit(f, pod)
			var ds []plan.Delegate
			for i := 0; i < tc.n; i++ {
				ds = append(ds, hostDevice("ns/nics", "net"+string(rune('1'+i))))
			}
			err := m.resolveDevices(context.Background(), pod, ds)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrDevice) || errors.Is(err, ErrTryAgain) != tc.tryAgain || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q: want ErrDevice, try again %v, mentioning %s", err, tc.tryAgain, tc.mention)
			}
			if !tc.tryAgain && !errors.As(err, new(*cniError)) {
				t.Errorf("error %q carries no CNI code", err)
			}
		})
	}
}

func TestResolveDevicesLeavesPodsWithoutClaimsAlone(t *testing.T) {
	m, _, _, pod := nicWorld(t)
	pod.Spec.ResourceClaims = nil
	ds := []plan.Delegate{hostDevice("ns/nics", "net1")}
	before := string(ds[0].ConfList)
	if err := m.resolveDevices(context.Background(), pod, ds); err != nil || string(ds[0].ConfList) != before || ds[0].Meta != nil {
		t.Errorf("pod without claims: err %v, conf %s, meta %v", err, ds[0].ConfList, ds[0].Meta)
	}
	m.Claims = nil // DRA off
	pod.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "a"}}
	if err := m.resolveDevices(context.Background(), pod, ds); err != nil || string(ds[0].ConfList) != before {
		t.Errorf("DRA off: err %v, conf %s", err, ds[0].ConfList)
	}
}

// deviceAttachment is a recorded attachment on ifname of device of claim, in state st, with
// address addr.
func deviceAttachment(t *testing.T, ifname, claim, device string, st checkpoint.State, addr string) checkpoint.Attachment {
	t.Helper()
	raw, err := json.Marshal(deviceRecord{ClaimNamespace: "ns", Claim: claim, ClaimUID: claim + "-uid", Generation: 2,
		Driver: testDriver, Pool: "node-a", Device: device})
	if err != nil {
		t.Fatal(err)
	}
	res := `{"cniVersion":"1.0.0","interfaces":[{"name":"` + ifname + `","mac":"02:00:00:00:00:01","sandbox":"/run/netns/x"}],` +
		`"ips":[{"address":"` + addr + `","interface":0}]}`
	return checkpoint.Attachment{Network: "ns/nics", IfName: ifname, State: st, Result: json.RawMessage(res),
		Meta: map[string]string{deviceMeta: string(raw)}}
}

func TestReportClaimsWritesEachClaimItsAttachedDevices(t *testing.T) {
	m, f, ev, _ := nicWorld(t)
	sb := &checkpoint.Sandbox{ContainerID: "c1", PodNamespace: "ns", PodName: "p", PodUID: "u", Attachments: []checkpoint.Attachment{
		{Network: "cluster", Default: true, IfName: "eth0", State: checkpoint.Added},
		deviceAttachment(t, "net1", "a", "nic-a", checkpoint.Added, "10.9.0.5/24"),
		deviceAttachment(t, "net2", "a", "nic-c", checkpoint.Adding, "10.9.0.6/24"),
	}}
	gone := []checkpoint.Attachment{deviceAttachment(t, "net3", "b", "nic-b", checkpoint.Added, "10.9.0.7/24")}
	m.reportClaims(context.Background(), sb, gone)
	a, b := f.applied["a"], f.applied["b"]
	if len(a) != 1 || a[0].Device != "nic-a" || a[0].Driver != testDriver || a[0].Pool != "node-a" || a[0].NetworkData == nil ||
		a[0].NetworkData.InterfaceName != "net1" || len(a[0].NetworkData.IPs) != 1 || a[0].NetworkData.IPs[0] != "10.9.0.5/24" ||
		a[0].NetworkData.HardwareAddress != "02:00:00:00:00:01" || len(a[0].Conditions) != 2 || a[0].Conditions[0].ObservedGeneration != 2 {
		t.Errorf("claim a: %+v, want nic-a on net1 only (nic-c is not attached yet)", a)
	}
	if entries, ok := f.applied["b"]; !ok || len(b) != 0 {
		t.Errorf("claim b: applied %v (%v), want an apply with no entries: its device left", entries, ok)
	}
	if len(ev.warnings()) != 0 {
		t.Errorf("warnings %v", ev.warnings())
	}
	f.fail = errors.New("the API server is down")
	m.reportClaims(context.Background(), sb, nil)
	if w := ev.warnings(); len(w) != 1 || !strings.Contains(w[0], "ns/a") || !strings.Contains(w[0], "the API server is down") {
		t.Errorf("warnings after a failed write %v, want one naming claim ns/a", w)
	}
}

func TestRefuseDevicePlug(t *testing.T) {
	nets := []plan.Network{{Key: "ns/plain"}, {Key: "ns/nics", ResourceName: "multinet.io/nic"}}
	if err := refuseDevicePlug(nets, []int{0}); err != nil {
		t.Errorf("plain network refused: %v", err)
	}
	if err := refuseDevicePlug(nets, []int{0, 1}); err == nil || !strings.Contains(err.Error(), `"ns/nics"`) {
		t.Errorf("device-backed plug: %v, want a refusal naming ns/nics", err)
	}
}
