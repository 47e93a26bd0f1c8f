package routes

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ifaceInput is what the previous result says about the interface.
type ifaceInput struct {
	addrs []netip.Prefix
	gws   []netip.Addr // at most one per family, from the result's IPs
}

func (in ifaceInput) gateway(v4 bool) netip.Addr {
	for _, gw := range in.gws {
		if gw.Is4() == v4 {
			return gw
		}
	}
	return netip.Addr{}
}

// Apply runs the plugin's steps on ifname in the current netns, in route-override's order
// (flushRoutes, ignoreGateway, delRoutes, addRoutes and subnet groups, flushGateway, then
// policyRouting), and edits result to match: routes removed from the kernel leave it, routes
// this plugin owns enter it. It returns what happened to each wanted route.
func Apply(ifname string, spec *Spec, result *types100.Result) ([]Outcome, error) {
	link, err := lookupLink(ifname)
	if err != nil {
		return nil, err
	}
	in := readResult(result, ifname)
	if len(in.addrs) == 0 {
		if in.addrs, err = globalAddrs(link); err != nil {
			return nil, err
		}
	}
	wants, err := wantedRoutes(spec, in)
	if err != nil {
		return nil, err
	}
	if err := removeBefore(link, spec, result, ifname); err != nil {
		return nil, err
	}
	outs, err := EnsureRoutes(link, wants)
	if err != nil {
		return nil, err
	}
	recordOwned(result, outs)
	if spec.FlushGateway {
		if err := dropDefault(link, result, ifname, false); err != nil {
			return nil, err
		}
	}
	if spec.Policy != nil {
		if err := ApplyPolicy(link, *spec.Policy, in.addrs, policyGateways(in, wants)); err != nil {
			return nil, err
		}
	}
	return outs, nil
}

// removeBefore runs the removing steps that precede the additions.
func removeBefore(link netlink.Link, spec *Spec, result *types100.Result, ifname string) error {
	if spec.FlushRoutes {
		_, err := DeleteRoutes(link, unix.RT_TABLE_MAIN, func(r netlink.Route) bool {
			return r.Protocol != unix.RTPROT_KERNEL
		})
		if err != nil {
			return fmt.Errorf("flushRoutes: %w", err)
		}
		result.Routes = nil
	}
	if spec.IgnoreGateway {
		if err := dropDefault(link, result, ifname, true); err != nil {
			return fmt.Errorf("ignoreGateway: %w", err)
		}
	}
	if len(spec.Del) == 0 {
		return nil
	}
	_, err := DeleteRoutes(link, unix.RT_TABLE_MAIN, func(r netlink.Route) bool { return matchesAny(r, spec.Del) })
	if err != nil {
		return fmt.Errorf("delRoutes: %w", err)
	}
	result.Routes = filterRoutes(result.Routes, func(r *types.Route) bool {
		p, _ := prefixOf(&r.Dst, true)
		for _, d := range spec.Del {
			if d.Dst == p && (!d.GW.IsValid() || r.GW == nil || addrOf(r.GW) == d.GW) {
				return false
			}
		}
		return true
	})
	return nil
}

func matchesAny(r netlink.Route, del []StaticRoute) bool {
	for _, d := range del {
		if routeDst(r) == d.Dst && (!d.GW.IsValid() || addrOf(r.Gw) == d.GW) {
			return true
		}
	}
	return false
}

// dropDefault removes the default routes on link from the kernel and the result; with
// clearGateway the gateways of the interface's IPs leave the result too.
func dropDefault(link netlink.Link, result *types100.Result, ifname string, clearGateway bool) error {
	if _, err := DeleteRoutes(link, unix.RT_TABLE_MAIN, isDefault); err != nil {
		return err
	}
	result.Routes = filterRoutes(result.Routes, func(r *types.Route) bool {
		ones, _ := r.Dst.Mask.Size()
		return ones != 0
	})
	if clearGateway {
		for _, ip := range result.IPs {
			if onInterface(result, ip, ifname) {
				ip.Gateway = nil
			}
		}
	}
	return nil
}

func filterRoutes(rs []*types.Route, keep func(*types.Route) bool) []*types.Route {
	out := rs[:0]
	for _, r := range rs {
		if r != nil && keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// wantedRoutes resolves the static routes (gateway defaulting, reachability) and plans the
// subnet groups. The first route to a destination wins.
func wantedRoutes(spec *Spec, in ifaceInput) ([]Want, error) {
	var wants []Want
	seen := map[netip.Prefix]bool{}
	for _, sr := range spec.Add {
		gw := sr.GW
		if !gw.IsValid() {
			gw = in.gateway(sr.Dst.Addr().Is4())
		}
		if gw.IsValid() && !OnLink(gw, in.addrs) {
			return nil, fmt.Errorf("%s: gateway %s is not on a directly reachable network of the interface (addresses %v)",
				sr.Field, gw, in.addrs)
		}
		if !seen[sr.Dst] {
			seen[sr.Dst] = true
			wants = append(wants, Want{Field: sr.Field, Dst: sr.Dst, GW: gw})
		}
	}
	plan, err := PlanSubnetGroups(spec.Groups, in.addrs)
	if err != nil {
		return nil, err
	}
	for _, p := range plan {
		if !seen[p.Dst] {
			seen[p.Dst] = true
			wants = append(wants, Want{Field: fmt.Sprintf("subnetGroups[%q]", p.Group), Dst: p.Dst, GW: p.GW})
		}
	}
	return wants, nil
}

// policyGateways picks, per family, the result's gateway or else the first planned gateway.
func policyGateways(in ifaceInput, wants []Want) []netip.Addr {
	var gws []netip.Addr
	for _, v4 := range []bool{true, false} {
		gw := in.gateway(v4)
		for i := 0; !gw.IsValid() && i < len(wants); i++ {
			if wants[i].GW.IsValid() && wants[i].GW.Is4() == v4 {
				gw = wants[i].GW
			}
		}
		if gw.IsValid() {
			gws = append(gws, gw)
		}
	}
	return gws
}

// readResult collects the addresses and gateways the result assigns to ifname.
func readResult(result *types100.Result, ifname string) ifaceInput {
	var in ifaceInput
	for _, ip := range result.IPs {
		if !onInterface(result, ip, ifname) {
			continue
		}
		if p, ok := prefixOf(&ip.Address, false); ok {
			in.addrs = append(in.addrs, p)
		}
		if gw := addrOf(ip.Gateway); gw.IsValid() && !in.gateway(gw.Is4()).IsValid() {
			in.gws = append(in.gws, gw)
		}
	}
	return in
}

// onInterface reports whether ip belongs to ifname; IPs without an interface index count.
func onInterface(result *types100.Result, ip *types100.IPConfig, ifname string) bool {
	if ip.Interface == nil {
		return true
	}
	i := *ip.Interface
	return i >= 0 && i < len(result.Interfaces) && result.Interfaces[i].Name == ifname
}

// recordOwned adds the routes this plugin owns to the result, once each.
func recordOwned(result *types100.Result, outs []Outcome) {
	have := map[netip.Prefix]bool{}
	for _, r := range result.Routes {
		if p, ok := prefixOf(&r.Dst, true); ok {
			have[p] = true
		}
	}
	for _, o := range outs {
		if !o.Ours || have[o.Dst] {
			continue
		}
		have[o.Dst] = true
		r := &types.Route{Dst: *ipNet(o.Dst)}
		if o.GW.IsValid() {
			r.GW = net.IP(o.GW.AsSlice())
		}
		result.Routes = append(result.Routes, r)
	}
}
