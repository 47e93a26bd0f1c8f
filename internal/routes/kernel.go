package routes

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Proto is the routing protocol number on every route this package installs ("proto 109"
// in `ip route`), which is how DEL tells its own routes from everyone else's.
const Proto netlink.RouteProtocol = 109

// Want is a route to ensure on an interface. A zero GW makes a direct (link-scope) route.
type Want struct {
	Field string // config field it came from, for errors
	Dst   netip.Prefix
	GW    netip.Addr
}

// Outcome reports what happened to one wanted route.
type Outcome struct {
	Dst netip.Prefix
	GW  netip.Addr
	// Ours is true when the route on the interface is one this package installed (now or by
	// an earlier ADD); false when another route to the same prefix was already there and was
	// left alone.
	Ours bool
	// Added is true when the route was installed by this call.
	Added bool
}

func (o Outcome) String() string {
	via := ""
	if o.GW.IsValid() {
		via = " via " + o.GW.String()
	}
	switch {
	case o.Added:
		return fmt.Sprintf("added %s%s", o.Dst, via)
	case o.Ours:
		return fmt.Sprintf("present %s%s", o.Dst, via)
	default:
		return fmt.Sprintf("present %s (another route to this prefix exists; left alone)", o.Dst)
	}
}

// lookupLink finds an interface by name, naming it in the error.
func lookupLink(name string) (netlink.Link, error) {
	link, err := netlinksafe.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", name, err)
	}
	return link, nil
}

// globalAddrs lists the interface's addresses that can carry routed traffic (no link-local).
func globalAddrs(link netlink.Link) ([]netip.Prefix, error) {
	addrs, err := netlinksafe.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %q: %w", link.Attrs().Name, err)
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet, false)
		if !ok || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// tableRoutes dumps the routes of one table for both families.
func tableRoutes(table int) ([]netlink.Route, error) {
	rs, err := netlinksafe.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes of table %d: %w", table, err)
	}
	return rs, nil
}

// EnsureRoutes installs each wanted route on link in the main table unless a route to the same
// prefix already exists there (from any interface), which is left alone. One dump serves the
// whole list.
func EnsureRoutes(link netlink.Link, wants []Want) ([]Outcome, error) {
	existing, err := tableRoutes(unix.RT_TABLE_MAIN)
	if err != nil {
		return nil, err
	}
	outs := make([]Outcome, 0, len(wants))
	for _, w := range wants {
		o, err := ensureRoute(link, w, existing, unix.RT_TABLE_MAIN)
		if err != nil {
			return outs, err
		}
		outs = append(outs, o)
	}
	return outs, nil
}

func ensureRoute(link netlink.Link, w Want, existing []netlink.Route, table int) (Outcome, error) {
	o := Outcome{Dst: w.Dst, GW: w.GW}
	for _, r := range existing {
		if r.Table != table || r.Type != unix.RTN_UNICAST && r.Type != 0 || routeDst(r) != w.Dst {
			continue
		}
		o.Ours = r.Protocol == Proto && r.LinkIndex == link.Attrs().Index && addrOf(r.Gw) == w.GW
		return o, nil
	}
	nr := kernelRoute(link, w.Dst, w.GW, table)
	if err := netlink.RouteAdd(nr); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return o, nil
		}
		return o, routeError(w, link, err)
	}
	o.Ours, o.Added = true, true
	return o, nil
}

func routeError(w Want, link netlink.Link, err error) error {
	name := link.Attrs().Name
	if errors.Is(err, unix.ENETUNREACH) {
		return fmt.Errorf("%s: gateway %s is not directly reachable on interface %q", w.Field, w.GW, name)
	}
	return fmt.Errorf("%s: add route to %s via %s dev %s: %w", w.Field, w.Dst, w.GW, name, err)
}

// kernelRoute builds the netlink route for dst via gw (or direct when gw is zero) on link.
func kernelRoute(link netlink.Link, dst netip.Prefix, gw netip.Addr, table int) *netlink.Route {
	r := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       ipNet(dst),
		Protocol:  Proto,
		Table:     table,
		Scope:     netlink.SCOPE_UNIVERSE,
	}
	if gw.IsValid() {
		r.Gw = net.IP(gw.AsSlice())
	} else {
		r.Scope = netlink.SCOPE_LINK
	}
	return r
}

// DeleteRoutes removes the routes of table on link for which match is true and returns them.
// Routes already gone are not an error.
func DeleteRoutes(link netlink.Link, table int, match func(netlink.Route) bool) ([]netlink.Route, error) {
	rs, err := tableRoutes(table)
	if err != nil {
		return nil, err
	}
	var gone []netlink.Route
	for _, r := range rs {
		if r.LinkIndex != link.Attrs().Index || !match(r) {
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			return gone, fmt.Errorf("delete route to %s dev %s: %w", routeDst(r), link.Attrs().Name, err)
		}
		gone = append(gone, r)
	}
	return gone, nil
}

// isDefault reports whether r is a default route of either family.
func isDefault(r netlink.Route) bool { return routeDst(r).Bits() == 0 }

// routeDst returns a route's destination, the default prefix of its family when unset.
func routeDst(r netlink.Route) netip.Prefix {
	if p, ok := prefixOf(r.Dst, true); ok {
		return p
	}
	if r.Family == unix.AF_INET6 || (r.Gw != nil && r.Gw.To4() == nil) {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
}

// prefixOf converts a net.IPNet; masked selects the network rather than the host address.
func prefixOf(n *net.IPNet, masked bool) (netip.Prefix, bool) {
	if n == nil || n.IP == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	p := netip.PrefixFrom(a.Unmap(), ones)
	if masked {
		p = p.Masked()
	}
	return p, true
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func ipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}
