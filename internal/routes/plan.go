package routes

import (
	"fmt"
	"net/netip"
)

// Group is a validated subnet group: subnets of one routed domain and their gateways.
type Group struct {
	Name    string
	Subnets []GroupSubnet
}

// GroupSubnet is one subnet of a group and the gateway that serves it.
type GroupSubnet struct {
	Prefix netip.Prefix
	GW     netip.Addr
}

// PlannedRoute is a route the subnet-group logic wants on the interface.
type PlannedRoute struct {
	Dst   netip.Prefix
	GW    netip.Addr
	Group string
}

// PlanSubnetGroups decides the routes an interface with the given addresses needs. For each
// address and group, the most specific subnet of the group containing the address is "ours";
// every other subnet of the group of the same family is routed via our subnet's gateway. An
// address in no subnet of a group yields nothing for that group. The gateway must lie in the
// address's own (directly reachable) network, or be an IPv6 link-local address. Two addresses
// or groups asking for the same destination via different gateways is an error.
func PlanSubnetGroups(groups []Group, addrs []netip.Prefix) ([]PlannedRoute, error) {
	var plan []PlannedRoute
	byDst := map[netip.Prefix]int{}
	for _, addr := range addrs {
		for _, g := range groups {
			routes, err := planOne(g, addr)
			if err != nil {
				return nil, err
			}
			for _, r := range routes {
				i, dup := byDst[r.Dst]
				if !dup {
					byDst[r.Dst] = len(plan)
					plan = append(plan, r)
					continue
				}
				if plan[i].GW != r.GW {
					return nil, fmt.Errorf("subnet group %q: route to %s via %s conflicts with the route via %s from group %q",
						r.Group, r.Dst, r.GW, plan[i].GW, plan[i].Group)
				}
			}
		}
	}
	return plan, nil
}

// planOne plans the routes of one group for one address.
func planOne(g Group, addr netip.Prefix) ([]PlannedRoute, error) {
	ip := addr.Addr().Unmap()
	home := -1
	for i, s := range g.Subnets {
		if s.Prefix.Contains(ip) && (home < 0 || s.Prefix.Bits() > g.Subnets[home].Prefix.Bits()) {
			home = i
		}
	}
	if home < 0 {
		return nil, nil
	}
	gw := g.Subnets[home].GW
	if !OnLink(gw, []netip.Prefix{addr}) {
		return nil, fmt.Errorf("subnet group %q: gateway %s of subnet %s is not on the directly reachable network %s of address %s",
			g.Name, gw, g.Subnets[home].Prefix, addr.Masked(), ip)
	}
	routes := make([]PlannedRoute, 0, len(g.Subnets)-1)
	onLink := addr.Masked()
	for i, s := range g.Subnets {
		if i == home || s.Prefix.Addr().Is4() != ip.Is4() {
			continue
		}
		if onLink.Contains(s.Prefix.Addr()) && s.Prefix.Bits() >= onLink.Bits() {
			continue // inside the interface's own network: reached directly, not via a gateway
		}
		routes = append(routes, PlannedRoute{Dst: s.Prefix, GW: gw, Group: g.Name})
	}
	return routes, nil
}

// OnLink reports whether gw is directly reachable from an interface with these addresses: in
// one of their networks, or an IPv6 link-local address.
func OnLink(gw netip.Addr, addrs []netip.Prefix) bool {
	if gw.Is6() && gw.IsLinkLocalUnicast() {
		return true
	}
	for _, a := range addrs {
		if a.Masked().Contains(gw) {
			return true
		}
	}
	return false
}
