package status

import (
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

// hand is a CNI result written once and built by hand in each version.
type hand struct {
	ifaces []types100.Interface
	ips    []handIP
	dns    types.DNS
}

// handIP is one ips entry; iface < 0 means no interface index.
type handIP struct {
	iface   int
	cidr    string
	gateway string
}

// results returns h as a CNI 0.4.0 and a CNI 1.0.0 result, keyed by version.
func (h hand) results(t *testing.T) map[string]types.Result {
	t.Helper()
	r040 := &types040.Result{CNIVersion: "0.4.0", DNS: h.dns}
	r100 := &types100.Result{CNIVersion: "1.0.0", DNS: h.dns}
	for _, i := range h.ifaces {
		r040.Interfaces = append(r040.Interfaces, &types040.Interface{Name: i.Name, Mac: i.Mac, Sandbox: i.Sandbox})
		i := i
		r100.Interfaces = append(r100.Interfaces, &i)
	}
	for _, ip := range h.ips {
		addr, gw := mustCIDR(t, ip.cidr), net.ParseIP(ip.gateway)
		var idx *int
		if ip.iface >= 0 {
			n := ip.iface
			idx = &n
		}
		version := "4"
		if addr.IP.To4() == nil {
			version = "6"
		}
		r040.IPs = append(r040.IPs, &types040.IPConfig{Version: version, Interface: idx, Address: addr, Gateway: gw})
		r100.IPs = append(r100.IPs, &types100.IPConfig{Interface: idx, Address: addr, Gateway: gw})
	}
	return map[string]types.Result{"0.4.0": r040, "1.0.0": r100}
}

func mustCIDR(t *testing.T, s string) net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	n.IP = ip
	return *n
}

const sandbox = "/var/run/netns/cni-1234"

var (
	bridgeLike = hand{
		ifaces: []types100.Interface{
			{Name: "cni0", Mac: "0a:58:0a:01:00:01"},
			{Name: "veth1a2b3c", Mac: "6e:2f:11:22:33:44"},
			{Name: "net1", Mac: "0a:58:0a:01:00:05", Sandbox: sandbox},
		},
		ips: []handIP{{iface: 2, cidr: "10.1.0.5/24", gateway: "10.1.0.1"}},
		dns: types.DNS{Nameservers: []string{"10.96.0.10"}, Search: []string{"svc.cluster.local"}},
	}
	macvlanLike = hand{
		ifaces: []types100.Interface{{Name: "net2", Mac: "52:54:00:aa:bb:cc", Sandbox: sandbox}},
		ips: []handIP{
			{iface: 0, cidr: "192.168.10.7/24", gateway: "192.168.10.1"},
			{iface: 0, cidr: "fd00:10::7/64", gateway: "fd00:10::1"},
		},
	}
	noInterfaces = hand{
		ips: []handIP{{iface: -1, cidr: "172.16.0.9/16"}},
	}
	hostOnly = hand{
		ifaces: []types100.Interface{{Name: "veth9", Mac: "6e:2f:00:00:00:09"}},
		ips:    []handIP{{iface: 0, cidr: "10.9.0.9/24"}},
	}
	twoInSandbox = hand{
		ifaces: []types100.Interface{
			{Name: "net3", Mac: "52:54:00:00:00:03", Sandbox: sandbox},
			{Name: "net4", Mac: "52:54:00:00:00:04", Sandbox: sandbox},
		},
		ips: []handIP{
			{iface: 0, cidr: "10.3.0.3/24"},
			{iface: 1, cidr: "10.4.0.4/24", gateway: "10.4.0.1"},
		},
	}
)

func TestBuildReportsTheSandboxInterface(t *testing.T) {
	dev := &nadv1.DeviceInfo{Type: nadv1.DeviceInfoTypePCI, Version: "1.1.0", Pci: &nadv1.PciDevice{PciAddress: "0000:03:00.1"}}
	tests := []struct {
		name string
		net  Network
		res  hand
		want nadv1.NetworkStatus
	}{{
		name: "bridge: host bridge and veth skipped, ips of the sandbox interface",
		net:  Network{Name: "net/storage", IfName: "net1"},
		res:  bridgeLike,
		want: nadv1.NetworkStatus{
			Name: "net/storage", Interface: "net1", IPs: []string{"10.1.0.5"}, Mac: "0a:58:0a:01:00:05",
			DNS:     nadv1.DNS{Nameservers: []string{"10.96.0.10"}, Search: []string{"svc.cluster.local"}},
			Gateway: []string{"10.1.0.1"},
		},
	}, {
		name: "cluster default network carries the default flag",
		net:  Network{Name: "cbr0", IfName: "net1", Default: true},
		res:  bridgeLike,
		want: nadv1.NetworkStatus{
			Name: "cbr0", Interface: "net1", IPs: []string{"10.1.0.5"}, Mac: "0a:58:0a:01:00:05", Default: true,
			DNS:     nadv1.DNS{Nameservers: []string{"10.96.0.10"}, Search: []string{"svc.cluster.local"}},
			Gateway: []string{"10.1.0.1"},
		},
	}, {
		name: "macvlan: dual stack, device info passed through",
		net:  Network{Name: "net/fast", IfName: "net2", DeviceInfo: dev},
		res:  macvlanLike,
		want: nadv1.NetworkStatus{
			Name: "net/fast", Interface: "net2", IPs: []string{"192.168.10.7", "fd00:10::7"}, Mac: "52:54:00:aa:bb:cc",
			Gateway: []string{"192.168.10.1", "fd00:10::1"}, DeviceInfo: dev,
		},
	}, {
		name: "no interfaces: all ips, the requested interface name",
		net:  Network{Name: "ipam/only", IfName: "net5"},
		res:  noInterfaces,
		want: nadv1.NetworkStatus{Name: "ipam/only", Interface: "net5", IPs: []string{"172.16.0.9"}},
	}, {
		name: "ips indexed to a host interface only are not the pod's",
		net:  Network{Name: "odd/host", IfName: "net6"},
		res:  hostOnly,
		want: nadv1.NetworkStatus{Name: "odd/host", Interface: "net6"},
	}, {
		name: "two sandbox interfaces: the one the runtime asked for",
		net:  Network{Name: "net/two", IfName: "net4"},
		res:  twoInSandbox,
		want: nadv1.NetworkStatus{
			Name: "net/two", Interface: "net4", IPs: []string{"10.4.0.4"}, Mac: "52:54:00:00:00:04", Gateway: []string{"10.4.0.1"},
		},
	}}
	for _, tt := range tests {
		for version, result := range tt.res.results(t) {
			t.Run(tt.name+"/"+version, func(t *testing.T) {
				n := tt.net
				n.Result = result
				got, err := Build([]Network{n})
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
					t.Errorf("Build =\n%+v\nwant\n%+v", got, tt.want)
				}
			})
		}
	}
}

func TestBuildKeepsOrderAndMtu(t *testing.T) {
	withMtu := macvlanLike
	withMtu.ifaces = []types100.Interface{{Name: "net2", Mac: "52:54:00:aa:bb:cc", Mtu: 9000, Sandbox: sandbox}}
	nets := []Network{
		{Name: "cbr0", IfName: "eth0", Default: true, Result: bridgeLike.results(t)["1.0.0"]},
		{Name: "net/fast", IfName: "net2", Result: withMtu.results(t)["1.0.0"]},
	}
	got, err := Build(nets)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if len(got) != 2 || got[0].Name != "cbr0" || got[1].Name != "net/fast" {
		t.Fatalf("Build order = %+v", got)
	}
	if got[1].Mtu != 9000 {
		t.Errorf("mtu = %d, want 9000", got[1].Mtu)
	}
}

func TestBuildFromPluginOutput(t *testing.T) {
	// As the bridge plugin prints it for a 0.4.0 conf.
	out := `{"cniVersion":"0.4.0","interfaces":[{"name":"cni0","mac":"0a:58:0a:01:00:01"},
		{"name":"veth5e6f","mac":"ee:11:22:33:44:55"},
		{"name":"eth0","mac":"0a:58:0a:01:00:07","sandbox":"/var/run/netns/x"}],
		"ips":[{"version":"4","interface":2,"address":"10.1.0.7/24","gateway":"10.1.0.1"}],
		"dns":{}}`
	r, err := types040.NewResult([]byte(out))
	if err != nil {
		t.Fatalf("parse result: %v", err)
	}
	got, err := Build([]Network{{Name: "cbr0", IfName: "eth0", Default: true, Result: r}})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	want := `[{"name":"cbr0","interface":"eth0","ips":["10.1.0.7"],"mac":"0a:58:0a:01:00:07","default":true,"gateway":["10.1.0.1"]}]`
	if s, err := Marshal(got); err != nil || s != want {
		t.Errorf("Marshal = %s, %v\nwant %s", s, err, want)
	}
}

// TestBuildTakesTheIPAMsDNSWhenThePluginDropsIt: macvlan replaces its IPAM's DNS with its
// conf's (empty) "dns"; the IPAM's is reported then, and the plugin's own when it has one.
func TestBuildTakesTheIPAMsDNSWhenThePluginDropsIt(t *testing.T) {
	ipam := types.DNS{Nameservers: []string{"10.40.1.53"}, Domain: "dhcp.test"}
	conf := types.DNS{Nameservers: []string{"10.40.2.53"}}
	for _, c := range []struct {
		name   string
		plugin types.DNS
		want   string
	}{
		{"plugin has none", types.DNS{}, `"dns":{"nameservers":["10.40.1.53"],"domain":"dhcp.test"}`},
		{"plugin has its conf's", conf, `"dns":{"nameservers":["10.40.2.53"]}`},
	} {
		for version, r := range (hand{ifaces: macvlanLike.ifaces, ips: macvlanLike.ips, dns: c.plugin}).results(t) {
			got, err := Build([]Network{{Name: "net/lan", IfName: "net1", Result: r, IPAMDNS: ipam}})
			if err != nil {
				t.Fatal(err)
			}
			s, err := Marshal(got)
			if err != nil || !strings.Contains(s, c.want) {
				t.Errorf("%s, CNI %s: %s, %v; want %s", c.name, version, s, err, c.want)
			}
		}
	}
}

// TestMarshalLeavesOutEmptyDNS: no "dns":{} when there is nothing to say.
func TestMarshalLeavesOutEmptyDNS(t *testing.T) {
	for _, d := range []nadv1.DNS{{}, {Nameservers: []string{}, Search: []string{}}} {
		got, err := Marshal([]nadv1.NetworkStatus{{Name: "net/lan", Interface: "net1", DNS: d}})
		if want := `[{"name":"net/lan","interface":"net1"}]`; err != nil || got != want {
			t.Errorf("DNS %+v: %s, %v; want %s", d, got, err, want)
		}
	}
}

func TestBuildWithoutResultFails(t *testing.T) {
	_, err := Build([]Network{{Name: "net/storage", IfName: "net1"}})
	if !errors.Is(err, errNoResult) {
		t.Fatalf("Build error = %v, want %v", err, errNoResult)
	}
}

func TestMarshalEmptyIsAList(t *testing.T) {
	for _, s := range [][]nadv1.NetworkStatus{nil, {}} {
		got, err := Marshal(s)
		if err != nil || got != "[]" {
			t.Errorf("Marshal(%v) = %q, %v; want []", s, got, err)
		}
	}
}

func TestAnnotationName(t *testing.T) {
	if Annotation != "k8s.v1.cni.cncf.io/network-status" {
		t.Errorf("Annotation = %q", Annotation)
	}
}

func TestAddedInterfaceMessage(t *testing.T) {
	n := Network{Name: "net/storage", IfName: "net1", Result: bridgeLike.results(t)["0.4.0"]}
	got, err := AddedInterfaceMessage(n)
	if want := "Add net1 [10.1.0.5/24] from net/storage"; err != nil || got != want {
		t.Errorf("AddedInterfaceMessage = %q, %v; want %q", got, err, want)
	}
}

func TestSameComparesWhatTheValuesSay(t *testing.T) {
	written := `[{"name":"cluster","interface":"eth0","ips":["10.244.0.5"],"mac":"0a:58:0a:f4:00:05","default":true}]`
	for _, c := range []struct {
		name  string
		other string
		same  bool
	}{
		{"identical", written, true},
		{"spacing and key order", `[ {"default": true, "mac": "0a:58:0a:f4:00:05", "ips": ["10.244.0.5"], "interface": "eth0", "name": "cluster"} ]`, true},
		{"empty dns written out", `[{"name":"cluster","interface":"eth0","ips":["10.244.0.5"],"mac":"0a:58:0a:f4:00:05","default":true,"dns":{}}]`, true},
		{"another address", `[{"name":"cluster","interface":"eth0","ips":["10.244.0.6"],"mac":"0a:58:0a:f4:00:05","default":true}]`, false},
		{"an interface more", `[{"name":"cluster","interface":"eth0","ips":["10.244.0.5"],"mac":"0a:58:0a:f4:00:05","default":true},{"name":"ns/blue","interface":"net1"}]`, false},
		{"missing", "", false},
		{"not JSON", "{", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Same(written, c.other); got != c.same {
				t.Errorf("Same(%s, %s) = %v, want %v", written, c.other, got, c.same)
			}
			if got := Same(c.other, written); got != c.same {
				t.Errorf("Same is not symmetric for %s", c.other)
			}
		})
	}
	if !Same("", "") || Same("", "[]") {
		t.Error("a missing annotation is the same as itself only")
	}
}

func TestInterfaceOfSaysWhatBuildSays(t *testing.T) {
	for name, h := range map[string]hand{
		"bridge": bridgeLike, "macvlan": macvlanLike, "no interfaces": noInterfaces,
		"host only": hostOnly, "two in sandbox": twoInSandbox,
	} {
		for version, result := range h.results(t) {
			t.Run(name+"/"+version, func(t *testing.T) {
				n := Network{Name: "net/x", IfName: "net4", Result: result}
				iface, err := InterfaceOf(n)
				if err != nil {
					t.Fatal(err)
				}
				st, err := Build([]Network{n})
				if err != nil {
					t.Fatal(err)
				}
				var ips []string
				for _, ip := range iface.IPs {
					if ip.Mask == nil {
						t.Errorf("address %s without its prefix length", ip.IP)
					}
					ips = append(ips, ip.IP.String())
				}
				if iface.Name != st[0].Interface || iface.Mac != st[0].Mac || !reflect.DeepEqual(ips, st[0].IPs) {
					t.Errorf("InterfaceOf %+v, Build %+v", iface, st[0])
				}
			})
		}
	}
	if _, err := InterfaceOf(Network{Name: "net/x"}); !errors.Is(err, errNoResult) {
		t.Errorf("without a result: %v", err)
	}
}
