package claims

import (
	"fmt"
	"net"
	"reflect"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/multinet/multinet/internal/status"
)

func cidr(t *testing.T, s string) net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	return *n
}

// hostDeviceResult is what host-device and static IPAM return for net1.
func hostDeviceResult(t *testing.T, addrs ...string) *types100.Result {
	r := &types100.Result{CNIVersion: "1.0.0", Interfaces: []*types100.Interface{
		{Name: "net1", Mac: "02:11:22:33:44:55", Sandbox: "/var/run/netns/p"},
	}}
	for _, a := range addrs {
		r.IPs = append(r.IPs, &types100.IPConfig{Interface: types100.Int(0), Address: cidr(t, a)})
	}
	return r
}

func TestDeviceStatusSaysWhatNetworkStatusSays(t *testing.T) {
	now := time.Date(2026, 12, 7, 7, 0, 0, 0, time.UTC)
	n := status.Network{Name: "net/fast", IfName: "net1", Result: hostDeviceResult(t, "10.1.0.5/24", "2001:db8:0:0::5/64")}
	dev := Device{Driver: sriov, Pool: "node-a", Name: "vf-1", ShareID: ptr(types.UID("0b6a3c2e-0000-4000-8000-000000000001"))}
	st, err := DeviceStatus(Report{Device: dev, Pod: "net/web-0", Network: n, Generation: 3, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	want := resourcev1.AllocatedDeviceStatus{
		Driver: sriov, Pool: "node-a", Device: "vf-1", ShareID: ptr("0b6a3c2e-0000-4000-8000-000000000001"),
		Conditions: []metav1.Condition{
			{Type: "Ready", Status: "True", Reason: "Attached", ObservedGeneration: 3, LastTransitionTime: metav1.NewTime(now),
				Message: "attached as net1 of pod net/web-0, network net/fast"},
			{Type: "NetworkReady", Status: "True", Reason: "InterfaceConfigured", ObservedGeneration: 3, LastTransitionTime: metav1.NewTime(now),
				Message: "configured: net1 of pod net/web-0, network net/fast"},
		},
		NetworkData: &resourcev1.NetworkDeviceData{InterfaceName: "net1", HardwareAddress: "02:11:22:33:44:55",
			IPs: []string{"10.1.0.5/24", "2001:db8::5/64"}},
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("got  %+v\nwant %+v", st, want)
	}
	ns, err := status.Build([]status.Network{n})
	if err != nil {
		t.Fatal(err)
	}
	if ns[0].Interface != st.NetworkData.InterfaceName || ns[0].Mac != st.NetworkData.HardwareAddress ||
		!reflect.DeepEqual(ns[0].IPs, []string{"10.1.0.5", "2001:db8::5"}) {
		t.Errorf("network-status %+v disagrees with the claim's %+v", ns[0], st.NetworkData)
	}
}

func TestDeviceStatusWithoutAResult(t *testing.T) {
	if _, err := DeviceStatus(Report{Network: status.Network{Name: "net/fast", IfName: "net1"}}); err == nil {
		t.Error("no error for a network without a CNI result")
	}
}

func TestNetworkDataIsWhatTheAPIAccepts(t *testing.T) {
	var many []net.IPNet
	for i := range 20 {
		many = append(many, cidr(t, fmt.Sprintf("10.0.0.%d/24", i+1)))
	}
	mapped := net.IPNet{IP: net.ParseIP("::ffff:192.0.2.7"), Mask: net.CIDRMask(120, 128)}
	tests := []struct {
		name  string
		iface status.Interface
		want  resourcev1.NetworkDeviceData
	}{
		{"IPv6 in RFC 5952 form, IPv4 with its host bits",
			status.Interface{Name: "net1", IPs: []net.IPNet{cidr(t, "2001:DB8:0:0:0:0:0:1/64"), cidr(t, "192.0.2.10/24")}},
			resourcev1.NetworkDeviceData{InterfaceName: "net1", IPs: []string{"2001:db8::1/64", "192.0.2.10/24"}}},
		{"an IPv4 address with an IPv6 mask", status.Interface{IPs: []net.IPNet{mapped}},
			resourcev1.NetworkDeviceData{IPs: []string{"192.0.2.7/24"}}},
		{"duplicates once", status.Interface{IPs: []net.IPNet{cidr(t, "10.0.0.1/24"), cidr(t, "10.0.0.1/24")}},
			resourcev1.NetworkDeviceData{IPs: []string{"10.0.0.1/24"}}},
		{"at most 16", status.Interface{IPs: many},
			resourcev1.NetworkDeviceData{IPs: func() []string {
				var s []string
				for i := range 16 {
					s = append(s, fmt.Sprintf("10.0.0.%d/24", i+1))
				}
				return s
			}()}},
		{"no mask, a mask that is not a prefix, a mask of the other family: left out",
			status.Interface{IPs: []net.IPNet{
				{IP: net.ParseIP("10.0.0.1")},
				{IP: net.ParseIP("10.0.0.2").To4(), Mask: net.IPv4Mask(255, 0, 255, 0)},
				{IP: net.ParseIP("2001:db8::1"), Mask: net.CIDRMask(24, 32)},
				{IP: []byte{1, 2, 3}, Mask: net.CIDRMask(24, 32)},
			}},
			resourcev1.NetworkDeviceData{}},
		{"an InfiniBand hardware address fits", status.Interface{Mac: "80:00:00:48:fe:80:00:00:00:00:00:00:02:c9:03:00:00:0f:cd:01"},
			resourcev1.NetworkDeviceData{HardwareAddress: "80:00:00:48:fe:80:00:00:00:00:00:00:02:c9:03:00:00:0f:cd:01"}},
		{"fields past their limits are left out",
			status.Interface{Name: string(make([]byte, 257)), Mac: string(make([]byte, 129))},
			resourcev1.NetworkDeviceData{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := networkData(tt.iface); !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func entry(driver, pool, device string, conds ...metav1.Condition) resourcev1.AllocatedDeviceStatus {
	return resourcev1.AllocatedDeviceStatus{Driver: driver, Pool: pool, Device: device, Conditions: conds}
}

func cond(typ string, s metav1.ConditionStatus, at time.Time) metav1.Condition {
	return metav1.Condition{Type: typ, Status: s, Reason: "R", LastTransitionTime: metav1.NewTime(at)}
}

func TestSetDeviceStatus(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	other := entry("gpu.example.com", "node-a", "gpu-0", cond("Ready", "True", t0))
	ours := entry(sriov, "node-a", "vf-1", cond("Ready", "True", t1), cond("NetworkReady", "True", t1))
	ours.NetworkData = &resourcev1.NetworkDeviceData{InterfaceName: "net1"}
	data := &runtime.RawExtension{Raw: []byte(`{"vendor":1}`)}
	withData := entry(sriov, "node-a", "vf-1", cond("Ready", "True", t0), cond("NetworkReady", "False", t0), cond("Vendor", "True", t0))
	withData.Data = data
	shared := entry(sriov, "node-a", "vf-1", cond("Ready", "False", t0))
	shared.ShareID = ptr("another-share")
	tests := []struct {
		name string
		in   []resourcev1.AllocatedDeviceStatus
		want []resourcev1.AllocatedDeviceStatus
	}{
		{"added after the others", []resourcev1.AllocatedDeviceStatus{other}, []resourcev1.AllocatedDeviceStatus{other, ours}},
		{"to an empty list", nil, []resourcev1.AllocatedDeviceStatus{ours}},
		{"replaces its own entry, keeps the driver's data and conditions, and an unchanged condition's time",
			[]resourcev1.AllocatedDeviceStatus{withData, other},
			[]resourcev1.AllocatedDeviceStatus{func() resourcev1.AllocatedDeviceStatus {
				e := entry(sriov, "node-a", "vf-1", cond("Ready", "True", t0), cond("NetworkReady", "True", t1), cond("Vendor", "True", t0))
				e.Data, e.NetworkData = data, ours.NetworkData
				return e
			}(), other}},
		{"another share of the device is another entry", []resourcev1.AllocatedDeviceStatus{shared},
			[]resourcev1.AllocatedDeviceStatus{shared, ours}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := deepCopies(tt.in)
			got := SetDeviceStatus(tt.in, ours)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if !reflect.DeepEqual(tt.in, before) {
				t.Error("the list given was changed")
			}
		})
	}
}

func deepCopies(in []resourcev1.AllocatedDeviceStatus) []resourcev1.AllocatedDeviceStatus {
	if in == nil {
		return nil
	}
	out := make([]resourcev1.AllocatedDeviceStatus, len(in))
	for i := range in {
		in[i].DeepCopyInto(&out[i])
	}
	return out
}

func TestRemoveDeviceStatus(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	dev := Device{Driver: sriov, Pool: "node-a", Name: "vf-1"}
	other := entry("gpu.example.com", "node-a", "gpu-0", cond("Ready", "True", t0))
	ours := entry(sriov, "node-a", "vf-1", cond("Ready", "True", t0), cond("NetworkReady", "True", t0))
	ours.NetworkData = &resourcev1.NetworkDeviceData{InterfaceName: "net1"}
	vendor := *ours.DeepCopy()
	vendor.Conditions = append(vendor.Conditions, cond("Vendor", "True", t0))
	shared := *ours.DeepCopy()
	shared.ShareID = ptr("s-1")
	tests := []struct {
		name string
		dev  Device
		in   []resourcev1.AllocatedDeviceStatus
		want []resourcev1.AllocatedDeviceStatus
	}{
		{"its entry goes, others stay", dev, []resourcev1.AllocatedDeviceStatus{ours, other}, []resourcev1.AllocatedDeviceStatus{other}},
		{"again: nothing to remove", dev, []resourcev1.AllocatedDeviceStatus{other}, []resourcev1.AllocatedDeviceStatus{other}},
		{"what the driver wrote stays", dev, []resourcev1.AllocatedDeviceStatus{vendor},
			[]resourcev1.AllocatedDeviceStatus{entry(sriov, "node-a", "vf-1", cond("Vendor", "True", t0))}},
		{"by share", Device{Driver: sriov, Pool: "node-a", Name: "vf-1", ShareID: ptr(types.UID("s-1"))},
			[]resourcev1.AllocatedDeviceStatus{ours, shared}, []resourcev1.AllocatedDeviceStatus{ours}},
		{"not another share", dev, []resourcev1.AllocatedDeviceStatus{shared}, []resourcev1.AllocatedDeviceStatus{shared}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := deepCopies(tt.in)
			if got := RemoveDeviceStatus(tt.in, tt.dev); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if !reflect.DeepEqual(tt.in, before) {
				t.Error("the list given was changed")
			}
		})
	}
}

func TestDeviceInfo(t *testing.T) {
	if got := DeviceInfo(Device{IfName: "dev5"}); got != nil {
		t.Errorf("a device without a PCI address: %+v, want none", got)
	}
	want := &nadv1.DeviceInfo{Type: "pci", Version: "1.1.0", Pci: &nadv1.PciDevice{PciAddress: "0000:3b:02.1"}}
	if got := DeviceInfo(Device{IfName: "ens1f0v1", PCIAddress: "0000:3b:02.1"}); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
