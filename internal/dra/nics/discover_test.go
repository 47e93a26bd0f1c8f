package nics

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/vishvananda/netlink"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/utils/ptr"
)

func names(nics []NIC) []string {
	out := []string{}
	for _, n := range nics {
		out = append(out, n.Name)
	}
	return out
}

func TestDiscoverSelectsByPatternAndSkipsUplink(t *testing.T) {
	links := []Link{
		{Name: "lo", MTU: 65536},
		{Name: "eth0", MTU: 1500, DefaultRoute: true},
		{Name: "eth2", MTU: 1500},
		{Name: "eth1", MTU: 9000},
		{Name: "ens5", MTU: 1500},
		{Name: "docker0", MTU: 1500},
		{Name: "vethab12", MTU: 1500},
	}
	no := false
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"include and exclude", Config{Include: []string{"eth*", "ens*"}, Exclude: []string{"eth2"}}, []string{"ens5", "eth1"}},
		{"uplink kept when asked", Config{Include: []string{"eth[0-9]*"}, ExcludeDefaultRoute: &no}, []string{"eth0", "eth1", "eth2"}},
		{"everything but lo and the uplink", Config{Include: []string{"*"}}, []string{"docker0", "ens5", "eth1", "eth2", "vethab12"}},
		{"nothing matches", Config{Include: []string{"ib*"}}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := names(Discover(tc.cfg, links, t.TempDir()))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// fakeSysfs lays out sysfs as the kernel does: class/net/<if>/device links to the device's
// directory under devices/, a virtio NIC's device sits under its PCI function.
func fakeSysfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, rel string) {
		if err := os.Symlink(target, filepath.Join(root, rel)); err != nil {
			t.Fatal(err)
		}
	}
	write("devices/pci0000:00/0000:00:03.0/numa_node", "1\n")
	write("devices/pci0000:00/0000:00:04.0/numa_node", "-1\n")
	if err := os.MkdirAll(filepath.Join(root, "devices/pci0000:00/0000:00:04.0/virtio1"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("class/net/eth1/speed", "25000\n")
	write("class/net/eth2/speed", "-1\n")
	write("class/net/mnt-veth/speed", "10000\n")
	link("../../../devices/pci0000:00/0000:00:03.0", "class/net/eth1/device")
	link("../../../devices/pci0000:00/0000:00:04.0/virtio1", "class/net/eth2/device")
	return root
}

func TestDiscoverReadsSysfs(t *testing.T) {
	links := []Link{
		{Name: "eth1", MAC: "02:00:00:00:00:01", MTU: 9000},
		{Name: "eth2", MAC: "02:00:00:00:00:02", MTU: 1500},
		{Name: "mnt-veth", MAC: "02:00:00:00:00:03", MTU: 1500},
		{Name: "eth3", MTU: 1500}, // down: no speed file readable, no device
	}
	got := Discover(Config{Include: []string{"*"}}, links, fakeSysfs(t))
	want := []NIC{
		{Link: links[0], PCIAddress: "0000:00:03.0", NUMANode: ptr.To[int64](1), SpeedMbps: ptr.To[int64](25000)},
		{Link: links[1], PCIAddress: "0000:00:04.0"},
		{Link: links[3]},
		{Link: links[2], SpeedMbps: ptr.To[int64](10000)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestDeviceAttributes(t *testing.T) {
	n := NIC{Link: Link{Name: "eth1", MAC: "02:00:00:00:00:01", MTU: 9000}, PCIAddress: "0000:00:03.0", NUMANode: ptr.To[int64](0), SpeedMbps: ptr.To[int64](25000)}
	got := n.Device("example.com/fast")
	want := resourceapi.Device{Name: "eth1", Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
		"ifName":                          {StringValue: ptr.To("eth1")},
		"mac":                             {StringValue: ptr.To("02:00:00:00:00:01")},
		"mtu":                             {IntValue: ptr.To[int64](9000)},
		"speed":                           {IntValue: ptr.To[int64](25000)},
		"pciAddress":                      {StringValue: ptr.To("0000:00:03.0")},
		"numaNode":                        {IntValue: ptr.To[int64](0)},
		"resource.kubernetes.io/pciBusID": {StringValue: ptr.To("0000:00:03.0")},
		"k8s.cni.cncf.io/resourceName":    {StringValue: ptr.To("example.com/fast")},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	bare := NIC{Link: Link{Name: "mnt-veth", MTU: 1500}}.Device("")
	if len(bare.Attributes) != 2 {
		t.Fatalf("a virtual link without MAC or speed has attributes %v, want ifName and mtu", bare.Attributes)
	}
}

func TestConfigValidate(t *testing.T) {
	long := string(make([]byte, 65))
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"good", Config{Include: []string{"eth[1-9]*"}, Exclude: []string{"eth9"}}, true},
		{"no include", Config{}, false},
		{"bad include", Config{Include: []string{"eth["}}, false},
		{"bad exclude", Config{Include: []string{"*"}, Exclude: []string{"["}}, false},
		{"resource name too long", Config{Include: []string{"*"}, ResourceName: long}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v", tc.name, err)
		}
	}
	if d := (Config{}).WithDefaults(); d.Driver != DefaultDriver || !*d.ExcludeDefaultRoute {
		t.Errorf("defaults: %+v", d)
	}
}

func TestDefaultRouteLinks(t *testing.T) {
	_, any4, _ := net.ParseCIDR("0.0.0.0/0")
	_, any6, _ := net.ParseCIDR("::/0")
	_, lan, _ := net.ParseCIDR("10.0.0.0/24")
	routes := []netlink.Route{
		{LinkIndex: 2},            // IPv4 default as the kernel dumps it: no Dst
		{LinkIndex: 3, Dst: any6}, // IPv6 default
		{LinkIndex: 4, Dst: any4}, // IPv4 default with an explicit 0/0
		{LinkIndex: 5, Dst: lan},  // not a default route
		{Dst: any4, MultiPath: []*netlink.NexthopInfo{{LinkIndex: 6}, {LinkIndex: 7}}},
	}
	want := map[int]bool{2: true, 3: true, 4: true, 6: true, 7: true}
	if got := defaultRouteLinks(routes); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
