package claims

import (
	"strings"
	"testing"

	resourcev1 "k8s.io/api/resource/v1"
)

func TestDeviceAttributesFollowTheDRANamingRules(t *testing.T) {
	type want struct{ resourceName, deviceID, ifName, pci, mac string }
	tests := []struct {
		name   string
		driver string
		attrs  map[string]string
		want   want
	}{
		{"bare names are the driver's: this project's driver", "nic.multinet.io",
			map[string]string{"k8s.cni.cncf.io/resourceName": "multinet.io/nic", "ifName": "eth5", "mac": "02:00:00:00:00:05"},
			want{"multinet.io/nic", "eth5", "eth5", "", "02:00:00:00:00:05"}},
		{"names qualified with the driver's domain, as DRANET publishes them", dranet,
			map[string]string{"k8s.cni.cncf.io/resourceName": "dranet/any", "dra.net/ifName": "eth1",
				"dra.net/pciAddress": "0000:00:04.0", "dra.net/mac": "52:54:00:12:34:56"},
			want{"dranet/any", "0000:00:04.0", "eth1", "0000:00:04.0", "52:54:00:12:34:56"}},
		{"an SR-IOV driver with the Multus deviceID and the standard PCI attribute", sriov,
			map[string]string{"k8s.cni.cncf.io/resourceName": "intel.com/sriov", "k8s.cni.cncf.io/deviceID": "0000:3b:02.1",
				"resource.kubernetes.io/pciBusID": "0000:3b:02.1"},
			want{"intel.com/sriov", "0000:3b:02.1", "", "0000:3b:02.1", ""}},
		{"a driver whose domain is k8s.cni.cncf.io may leave it out", CNIDomain,
			map[string]string{"resourceName": "example.com/a", "ifName": "eth2"},
			want{"example.com/a", "eth2", "eth2", "", ""}},
		{"a bare resourceName of another driver is that driver's, not the NAD's", sriov,
			map[string]string{"resourceName": "example.com/a", "ifName": "eth2"},
			want{"", "eth2", "eth2", "", ""}},
		{"ifName of another driver's domain is not read", sriov,
			map[string]string{"dra.net/ifName": "eth3", "k8s.cni.cncf.io/ifName": "eth4"},
			want{"", "eth4", "eth4", "", ""}},
		{"the driver's own pciAddress wins over the standard one", sriov,
			map[string]string{"pciAddress": "0000:00:05.0", "resource.kubernetes.io/pciBusID": "0000:00:06.0"},
			want{"", "0000:00:05.0", "", "0000:00:05.0", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Device{Driver: tt.driver}
			dev := device("d", tt.attrs)
			describe(&d, &dev)
			got := want{d.ResourceName, d.DeviceID, d.IfName, d.PCIAddress, d.MAC}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if len(d.Attributes) != len(tt.attrs) {
				t.Errorf("%d attributes kept, want %d", len(d.Attributes), len(tt.attrs))
			}
			for name := range d.Attributes {
				if !strings.Contains(string(name), "/") {
					t.Errorf("attribute %q kept without its domain", name)
				}
			}
		})
	}
}

func TestAttributesOfAnotherTypeAreNotStrings(t *testing.T) {
	dev := resourcev1.Device{Name: "d", Attributes: map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{
		AttrResourceName: {IntValue: ptr(int64(3))},
		"ifName":         {BoolValue: ptr(true)},
		"numaNode":       {IntValue: ptr(int64(1))},
	}}
	d := Device{Driver: sriov}
	describe(&d, &dev)
	if d.ResourceName != "" || d.IfName != "" {
		t.Errorf("non-string attributes read as strings: %+v", d)
	}
	if a := d.Attributes["sriov.example.com/numaNode"]; a.IntValue == nil || *a.IntValue != 1 {
		t.Errorf("numaNode not kept under the driver's domain: %+v", d.Attributes)
	}
}
