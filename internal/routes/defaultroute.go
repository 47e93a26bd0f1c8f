package routes

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MoveDefaultRoute makes ifname (via gw) the default route of its address family inside the
// netns at netnsPath: removes the existing default route(s) of that family (from any
// interface) and adds `default via gw dev ifname`. Idempotent. Other routes (e.g. eth0's
// cluster routes) are untouched. If the new route cannot be added, the removed ones are put
// back.
func MoveDefaultRoute(netnsPath, ifname string, gw net.IP) error {
	gwAddr, ok := netip.AddrFromSlice(gw)
	if !ok {
		return fmt.Errorf("default-route: invalid gateway %q", gw)
	}
	gwAddr = gwAddr.Unmap()
	return ns.WithNetNSPath(netnsPath, func(ns.NetNS) error { return moveDefault(ifname, gwAddr) })
}

// DefaultRoute is a default route found in a netns: its interface and gateway.
type DefaultRoute struct {
	IfName string
	GW     net.IP
}

// DefaultRoutes lists the default routes (IPv4 and IPv6, main table, with a gateway) inside
// the netns at netnsPath: what MoveDefaultRoute would replace, to be put back later.
func DefaultRoutes(netnsPath string) ([]DefaultRoute, error) {
	var out []DefaultRoute
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		main, err := tableRoutes(unix.RT_TABLE_MAIN)
		if err != nil {
			return err
		}
		links, err := netlinksafe.LinkList()
		if err != nil {
			return err
		}
		names := make(map[int]string, len(links))
		for _, l := range links {
			names[l.Attrs().Index] = l.Attrs().Name
		}
		for _, r := range main {
			if isDefault(r) && r.Gw != nil && (r.Type == unix.RTN_UNICAST || r.Type == 0) && names[r.LinkIndex] != "" {
				out = append(out, DefaultRoute{IfName: names[r.LinkIndex], GW: r.Gw})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("default routes: %w", err)
	}
	return out, nil
}

// CheckDefaultRoute verifies, inside the netns at netnsPath, that the default route of gw's
// family goes via gw on ifname, as MoveDefaultRoute left it: CHECK of a pod whose
// default-route element moved it.
func CheckDefaultRoute(netnsPath, ifname string, gw net.IP) error {
	gwAddr, ok := netip.AddrFromSlice(gw)
	if !ok {
		return fmt.Errorf("default-route: invalid gateway %q", gw)
	}
	gwAddr = gwAddr.Unmap()
	return ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		link, err := lookupLink(ifname)
		if err != nil {
			return fmt.Errorf("default-route: %w", err)
		}
		main, err := tableRoutes(unix.RT_TABLE_MAIN)
		if err != nil {
			return fmt.Errorf("default-route: %w", err)
		}
		var found []string
		for _, r := range main {
			if !isDefault(r) || routeDst(r).Addr().Is4() != gwAddr.Is4() {
				continue
			}
			if r.LinkIndex == link.Attrs().Index && addrOf(r.Gw) == gwAddr {
				return nil
			}
			found = append(found, fmt.Sprintf("via %s (link %d)", r.Gw, r.LinkIndex))
		}
		return fmt.Errorf("default-route: the default route is not via %s on %s (found: %v)", gwAddr, ifname, found)
	})
}

func moveDefault(ifname string, gw netip.Addr) error {
	link, err := lookupLink(ifname)
	if err != nil {
		return fmt.Errorf("default-route: %w", err)
	}
	main, err := tableRoutes(unix.RT_TABLE_MAIN)
	if err != nil {
		return fmt.Errorf("default-route: %w", err)
	}
	var defaults []netlink.Route
	for _, r := range main {
		if isDefault(r) && routeDst(r).Addr().Is4() == gw.Is4() && (r.Type == unix.RTN_UNICAST || r.Type == 0) {
			defaults = append(defaults, r)
		}
	}
	if len(defaults) == 1 && defaults[0].LinkIndex == link.Attrs().Index && addrOf(defaults[0].Gw) == gw {
		return nil
	}
	for i := range defaults {
		if err := netlink.RouteDel(&defaults[i]); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("default-route: delete default via %s: %w", defaults[i].Gw, err)
		}
	}
	nr := kernelRoute(link, netip.PrefixFrom(zeroOf(gw), 0), gw, unix.RT_TABLE_MAIN)
	if err := netlink.RouteAdd(nr); err != nil {
		restoreRoutes(defaults)
		w := Want{Field: "default-route", Dst: netip.PrefixFrom(zeroOf(gw), 0), GW: gw}
		return routeError(w, link, err)
	}
	return nil
}

// restoreRoutes puts back routes removed before a failed change, best effort: the caller
// reports the original failure.
func restoreRoutes(rs []netlink.Route) {
	for i := range rs {
		_ = netlink.RouteAdd(&rs[i])
	}
}
