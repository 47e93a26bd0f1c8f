package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Option codes multinet applies, beyond those dhcpv4 names.
const (
	optClasslessRoutes   = 121 // RFC 3442
	optMSClasslessRoutes = 249 // the same, as older Microsoft servers send it
	optStaticRoutes      = 33  // classful, RFC 2132
	optMTU               = 26
	optDomainSearch      = 119
)

// requested is the parameter request list of every message multinet sends.
var requested = []dhcpv4.OptionCode{
	dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer, dhcpv4.OptionDomainName,
	dhcpv4.OptionInterfaceMTU, dhcpv4.OptionStaticRoutingTable, dhcpv4.OptionIPAddressLeaseTime,
	dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue, dhcpv4.OptionDNSDomainSearchList,
	dhcpv4.OptionClasslessStaticRoute, dhcpv4.GenericOptionCode(optMSClasslessRoutes),
}

// route is one route a lease asks for; a nil or zero GW means on-link.
type route struct {
	Dst net.IPNet
	GW  net.IP
}

// settings is what a lease means for the pod's interface.
type settings struct {
	Address net.IPNet
	Gateway net.IP // reported as the interface's gateway (subnet and default modes)
	Routes  []route
	DNS     types.DNS
	MTU     int
	Ignored []string // what was left out and why, for the log
}

// interpret turns an ACK into settings under the network's configuration. Malformed or
// unknown options are left out (and said so in Ignored), never fatal.
func interpret(ack *dhcpv4.DHCPv4, c *Conf) settings {
	var s settings
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask()
	}
	s.Address = net.IPNet{IP: ack.YourIPAddr.To4(), Mask: mask}
	router := firstRouter(ack)
	classless, from := classlessOption(ack, &s)
	var candidates []route
	if classless != nil {
		// RFC 3442: with classless routes the router and static routes options are ignored.
		candidates = classless
		router = defaultRouter(classless)
		if len(ack.Options[optStaticRoutes]) > 0 {
			s.Ignored = append(s.Ignored, fmt.Sprintf("option 33 (static routes): option %d takes precedence", from))
		}
	} else {
		candidates = classfulRoutes(ack.Options[optStaticRoutes], &s)
		if router != nil {
			candidates = append(candidates, route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: router})
		}
	}
	if c.Router != RouterIgnore {
		s.Gateway = router
	}
	for _, r := range c.Routes {
		gw := r.GW
		if gw == nil {
			gw = s.Gateway
		}
		candidates = append(candidates, route{Dst: r.Dst, GW: gw})
	}
	s.Routes = s.keep(candidates, c.Router)
	for _, r := range s.Routes {
		if onLink(r.GW) {
			s.Gateway = nil // plugins would send on-link routes via a gateway
		}
	}
	s.DNS = dnsOf(ack)
	s.MTU = mtuOf(ack, &s)
	return s
}

// keep drops the routes that would fail or that the router mode rules out: default routes
// unless mode is default, routes to the lease's own subnet, routes via a gateway outside it,
// and repeated destinations (the first wins).
func (s *settings) keep(candidates []route, mode string) []route {
	var out []route
	seen := map[string]bool{s.Address.IP.Mask(s.Address.Mask).String() + "/" + maskBits(s.Address.Mask): true}
	for _, r := range candidates {
		dst := net.IPNet{IP: r.Dst.IP.To4().Mask(r.Dst.Mask), Mask: r.Dst.Mask}
		if dst.IP == nil {
			s.Ignored = append(s.Ignored, fmt.Sprintf("route to %s: not IPv4", r.Dst.String()))
			continue
		}
		key := dst.String()
		switch {
		case seen[key]:
			s.Ignored = append(s.Ignored, fmt.Sprintf("route to %s via %s: destination already routed", key, r.GW))
			continue
		case maskBits(dst.Mask) == "0" && mode != RouterDefault:
			s.Ignored = append(s.Ignored, fmt.Sprintf("default route via %s: router mode is %q", r.GW, mode))
			continue
		case !onLink(r.GW) && !s.Address.Contains(r.GW):
			s.Ignored = append(s.Ignored, fmt.Sprintf("route to %s via %s: gateway not in %s", key, r.GW, s.Address.String()))
			continue
		}
		seen[key] = true
		gw := r.GW
		if onLink(gw) {
			gw = nil
		}
		out = append(out, route{Dst: dst, GW: gw})
	}
	return out
}

// Result renders the settings as the CNI result the delegate applies.
func (s *settings) Result(priority int) *types100.Result {
	res := &types100.Result{CNIVersion: types100.ImplementedSpecVersion, DNS: s.DNS}
	res.IPs = []*types100.IPConfig{{Address: s.Address, Gateway: s.Gateway}}
	for _, r := range s.Routes {
		tr := &types.Route{Dst: r.Dst, GW: r.GW, Priority: priority}
		if r.GW == nil {
			scope := 253 // RT_SCOPE_LINK
			tr.Scope = &scope
		}
		res.Routes = append(res.Routes, tr)
	}
	return res
}

func onLink(gw net.IP) bool { return gw == nil || gw.IsUnspecified() }

func maskBits(m net.IPMask) string {
	ones, _ := m.Size()
	return fmt.Sprint(ones)
}

func firstRouter(ack *dhcpv4.DHCPv4) net.IP {
	for _, r := range ack.Router() {
		if v4 := r.To4(); v4 != nil && !v4.IsUnspecified() {
			return v4
		}
	}
	return nil
}

func defaultRouter(rs []route) net.IP {
	for _, r := range rs {
		if ones, _ := r.Dst.Mask.Size(); ones == 0 && !onLink(r.GW) {
			return r.GW
		}
	}
	return nil
}

// classlessOption reads option 121, else 249; a malformed one is ignored as a whole.
func classlessOption(ack *dhcpv4.DHCPv4, s *settings) ([]route, int) {
	for _, code := range []uint8{optClasslessRoutes, optMSClasslessRoutes} {
		raw, ok := ack.Options[code]
		if !ok {
			continue
		}
		rs, err := parseClassless(raw)
		if err != nil {
			s.Ignored = append(s.Ignored, fmt.Sprintf("option %d: %v", code, err))
			continue
		}
		return rs, int(code)
	}
	return nil, 0
}

var errTruncated = errors.New("truncated")

// parseClassless decodes RFC 3442 data: for each route a prefix length, the significant
// octets of the destination, then the router.
func parseClassless(b []byte) ([]route, error) {
	out := []route{}
	for len(b) > 0 {
		bits := int(b[0])
		if bits > 32 {
			return nil, fmt.Errorf("route %d: prefix length %d", len(out)+1, bits)
		}
		n := (bits + 7) / 8
		if len(b) < 1+n+4 {
			return nil, fmt.Errorf("route %d: %w", len(out)+1, errTruncated)
		}
		dst := make(net.IP, 4)
		copy(dst, b[1:1+n])
		mask := net.CIDRMask(bits, 32)
		gw := net.IP(append([]byte(nil), b[1+n:5+n]...))
		out = append(out, route{Dst: net.IPNet{IP: dst.Mask(mask), Mask: mask}, GW: gw})
		b = b[5+n:]
	}
	return out, nil
}

// classfulRoutes decodes option 33: destination and router pairs, each destination's prefix
// by classfulPrefix. 0.0.0.0 is not allowed as a destination (RFC 2132).
func classfulRoutes(b []byte, s *settings) []route {
	var out []route
	if len(b)%8 != 0 {
		s.Ignored = append(s.Ignored, fmt.Sprintf("option 33: length %d is not a multiple of 8", len(b)))
		return nil
	}
	for ; len(b) >= 8; b = b[8:] {
		dst, gw := net.IP(append([]byte(nil), b[:4]...)), net.IP(append([]byte(nil), b[4:8]...))
		if dst.IsUnspecified() {
			s.Ignored = append(s.Ignored, "option 33: default route is not allowed there")
			continue
		}
		out = append(out, route{Dst: net.IPNet{IP: dst, Mask: net.CIDRMask(classfulPrefix(dst), 32)}, GW: gw})
	}
	return out
}

// classfulPrefix is the longer of the destination's class prefix and the prefix its trailing
// zero octets give (as dhclient reads option 33): 10.0.0.0 is /8, 10.42.0.0 /16 and
// 10.42.1.9 /32. A bare class mask would leave host bits set, which the kernel refuses.
func classfulPrefix(dst net.IP) int {
	class, _ := dst.DefaultMask().Size()
	zeros := 0
	for i := 3; i >= 0 && dst[i] == 0; i-- {
		zeros++
	}
	return max(class, 32-8*zeros)
}

func dnsOf(ack *dhcpv4.DHCPv4) types.DNS {
	var d types.DNS
	for _, ip := range ack.DNS() {
		d.Nameservers = append(d.Nameservers, ip.String())
	}
	d.Domain = ack.DomainName()
	if _, ok := ack.Options[optDomainSearch]; ok {
		if labels := ack.DomainSearch(); labels != nil {
			d.Search = labels.Labels
		}
	}
	return d
}

func mtuOf(ack *dhcpv4.DHCPv4, s *settings) int {
	raw, ok := ack.Options[optMTU]
	if !ok {
		return 0
	}
	if len(raw) != 2 || binary.BigEndian.Uint16(raw) < 68 {
		s.Ignored = append(s.Ignored, fmt.Sprintf("option 26 (MTU): %x is not an MTU of at least 68", raw))
		return 0
	}
	return int(binary.BigEndian.Uint16(raw))
}
