package dhcp

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// ack builds a DHCPACK for 10.40.0.7/24 with the given raw options.
func ack(t *testing.T, opts map[uint8][]byte) *dhcpv4.DHCPv4 {
	t.Helper()
	a, err := dhcpv4.New(dhcpv4.WithYourIP(net.IPv4(10, 40, 0, 7)),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)), dhcpv4.WithMessageType(dhcpv4.MessageTypeAck))
	if err != nil {
		t.Fatal(err)
	}
	for code, v := range opts {
		a.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(code), v))
	}
	return a
}

func routeStrings(rs []route) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Dst.String()+" via "+r.GW.String())
	}
	return out
}

func TestInterpretRoutesUnderEachRouterMode(t *testing.T) {
	router := []byte{10, 40, 0, 1}
	// 0/0 via .1; 10.41/16 via .1; 10.40.0.0/24 on-link (own subnet); 10.47/16 via 192.0.2.1 (off-link)
	classless := []byte{0, 10, 40, 0, 1, 16, 10, 41, 10, 40, 0, 1, 24, 10, 40, 0, 0, 0, 0, 0, 16, 10, 47, 192, 0, 2, 1}
	classful := []byte{10, 42, 0, 0, 10, 40, 0, 1, 0, 0, 0, 0, 10, 40, 0, 1}
	for _, c := range []struct {
		name    string
		opts    map[uint8][]byte
		mode    string
		want    []string
		gateway string
	}{
		{"router only, ignore", map[uint8][]byte{3: router}, RouterIgnore, nil, "<nil>"},
		{"router only, subnet", map[uint8][]byte{3: router}, RouterSubnet, nil, "10.40.0.1"},
		{"router only, default", map[uint8][]byte{3: router}, RouterDefault, []string{"0.0.0.0/0 via 10.40.0.1"}, "10.40.0.1"},
		{"33 and router, default", map[uint8][]byte{3: router, 33: classful}, RouterDefault,
			[]string{"10.42.0.0/16 via 10.40.0.1", "0.0.0.0/0 via 10.40.0.1"}, "10.40.0.1"},
		{"121 wins over 3, 249 and 33, ignore", map[uint8][]byte{3: {10, 40, 0, 9}, 33: classful, 121: classless, 249: {8, 11, 10, 40, 0, 1}},
			RouterIgnore, []string{"10.41.0.0/16 via 10.40.0.1"}, "<nil>"},
		{"121 default route, default", map[uint8][]byte{3: {10, 40, 0, 9}, 121: classless}, RouterDefault,
			[]string{"0.0.0.0/0 via 10.40.0.1", "10.41.0.0/16 via 10.40.0.1"}, "10.40.0.1"},
		{"249 when no 121", map[uint8][]byte{249: {8, 11, 10, 40, 0, 1}}, RouterIgnore, []string{"11.0.0.0/8 via 10.40.0.1"}, "<nil>"},
		{"malformed 121 falls back to 249", map[uint8][]byte{121: {33, 1}, 249: {8, 11, 10, 40, 0, 1}}, RouterIgnore,
			[]string{"11.0.0.0/8 via 10.40.0.1"}, "<nil>"},
		{"on-link classless route", map[uint8][]byte{3: router, 121: {16, 10, 48, 0, 0, 0, 0}}, RouterSubnet,
			[]string{"10.48.0.0/16 via <nil>"}, "<nil>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := interpret(ack(t, c.opts), &Conf{Router: c.mode})
			if got := routeStrings(s.Routes); !slices.Equal(got, c.want) {
				t.Errorf("routes %v, want %v (ignored: %v)", got, c.want, s.Ignored)
			}
			if got := s.Gateway.String(); got != c.gateway {
				t.Errorf("gateway %s, want %s", got, c.gateway)
			}
		})
	}
}

func TestInterpretConfiguredRoutesDNSAndMTU(t *testing.T) {
	a := ack(t, map[uint8][]byte{3: {10, 40, 0, 1}, 6: {10, 40, 0, 53, 10, 40, 0, 54}, 15: []byte("example.org"),
		26: {0x05, 0x78}})
	_, dst, _ := net.ParseCIDR("192.168.0.0/16")
	conf := &Conf{Router: RouterSubnet}
	if err := conf.validate(); err != nil {
		t.Fatal(err)
	}
	conf.Routes = append(conf.Routes, &types.Route{Dst: *dst})
	s := interpret(a, conf)
	if got := routeStrings(s.Routes); !slices.Equal(got, []string{"192.168.0.0/16 via 10.40.0.1"}) {
		t.Errorf("routes %v: a configured route without gw goes via the router", got)
	}
	if !slices.Equal(s.DNS.Nameservers, []string{"10.40.0.53", "10.40.0.54"}) || s.DNS.Domain != "example.org" {
		t.Errorf("dns %+v", s.DNS)
	}
	if s.MTU != 1400 {
		t.Errorf("mtu %d, want 1400", s.MTU)
	}
	res := s.Result(50)
	if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.40.0.7/24" || res.Routes[0].Priority != 50 {
		t.Errorf("result %+v", res)
	}
}

func TestInterpretIgnoresBadOptions(t *testing.T) {
	s := interpret(ack(t, map[uint8][]byte{26: {1}, 33: {1, 2, 3}, 121: {40}, 200: {1, 2}}), &Conf{Router: RouterIgnore})
	if len(s.Routes) != 0 || s.MTU != 0 || len(s.Ignored) != 3 {
		t.Errorf("routes %v mtu %d ignored %q", s.Routes, s.MTU, s.Ignored)
	}
	for _, want := range []string{"option 26", "option 33", "option 121"} {
		if !strings.Contains(strings.Join(s.Ignored, ";"), want) {
			t.Errorf("ignored %q does not mention %s", s.Ignored, want)
		}
	}
}

func TestParseClassless(t *testing.T) {
	got, err := parseClassless([]byte{0, 10, 0, 0, 1, 32, 1, 2, 3, 4, 10, 0, 0, 1, 9, 172, 128, 10, 0, 0, 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0.0.0.0/0 via 10.0.0.1", "1.2.3.4/32 via 10.0.0.1", "172.128.0.0/9 via 10.0.0.1"}
	if s := routeStrings(got); !slices.Equal(s, want) {
		t.Errorf("%v, want %v", s, want)
	}
	for _, bad := range [][]byte{{33}, {8, 10}, {24, 10, 0, 0, 1, 2}} {
		if _, err := parseClassless(bad); err == nil {
			t.Errorf("%v parsed", bad)
		}
	}
}

func TestClassfulPrefix(t *testing.T) {
	for ip, want := range map[string]int{"10.0.0.0": 8, "10.42.0.0": 16, "10.42.1.9": 32, "172.16.0.0": 16,
		"192.168.5.0": 24, "172.16.5.0": 24} {
		if got := classfulPrefix(net.ParseIP(ip).To4()); got != want {
			t.Errorf("%s: /%d, want /%d", ip, got, want)
		}
	}
}

func FuzzInterpret(f *testing.F) {
	f.Add([]byte{0, 10, 40, 0, 1}, []byte{10, 0, 0, 0, 10, 40, 0, 1}, []byte{10, 40, 0, 1}, []byte{5, 0})
	f.Fuzz(func(t *testing.T, o121, o33, o3, o26 []byte) {
		s := interpret(ack(t, map[uint8][]byte{121: o121, 33: o33, 3: o3, 26: o26}), &Conf{Router: RouterDefault})
		seen := map[string]bool{}
		for _, r := range s.Routes {
			if seen[r.Dst.String()] {
				t.Fatalf("destination %s twice", r.Dst.String())
			}
			seen[r.Dst.String()] = true
			if r.GW != nil && !s.Address.Contains(r.GW) {
				t.Fatalf("route %s via %s: gateway off-link", r.Dst.String(), r.GW)
			}
		}
		_ = s.Result(0)
	})
}
