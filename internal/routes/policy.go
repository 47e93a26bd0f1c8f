package routes

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// policyTable is the routing table of link under p.
func policyTable(p PolicyRouting, link netlink.Link) int {
	if p.Table > 0 {
		return p.Table
	}
	return DefaultPolicyTableBase + link.Attrs().Index
}

func rulePriority(p PolicyRouting) int {
	if p.Priority > 0 {
		return p.Priority
	}
	return DefaultRulePriority
}

// ApplyPolicy gives link a routing table of its own holding a copy of its main-table routes
// plus a default route via each of gws, and a rule "from <address> lookup <table>" per address,
// so that traffic sourced from the interface's addresses leaves through it. Idempotent.
func ApplyPolicy(link netlink.Link, p PolicyRouting, addrs []netip.Prefix, gws []netip.Addr) error {
	table := policyTable(p, link)
	main, err := tableRoutes(unix.RT_TABLE_MAIN)
	if err != nil {
		return err
	}
	var wants []Want
	for _, r := range main {
		if r.LinkIndex == link.Attrs().Index && (r.Type == unix.RTN_UNICAST || r.Type == 0) {
			wants = append(wants, Want{Field: "policyRouting", Dst: routeDst(r), GW: addrOf(r.Gw)})
		}
	}
	for _, gw := range gws {
		wants = append(wants, Want{Field: "policyRouting", Dst: netip.PrefixFrom(zeroOf(gw), 0), GW: gw})
	}
	existing, err := tableRoutes(table)
	if err != nil {
		return err
	}
	for _, w := range wants {
		if _, err := ensureRoute(link, w, existing, table); err != nil {
			return fmt.Errorf("policyRouting table %d: %w", table, err)
		}
	}
	for _, a := range addrs {
		if err := ensureRule(a.Addr(), table, rulePriority(p)); err != nil {
			return err
		}
	}
	return nil
}

func ensureRule(src netip.Addr, table, prio int) error {
	family := familyOf(src)
	rules, err := netlinksafe.RuleListFiltered(family, &netlink.Rule{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("policyRouting: list rules of table %d: %w", table, err)
	}
	host := netip.PrefixFrom(src, src.BitLen())
	for _, r := range rules {
		if p, ok := prefixOf(r.Src, false); ok && p == host {
			return nil
		}
	}
	rule := netlink.NewRule()
	rule.Family = family
	rule.Src = ipNet(host)
	rule.Table = table
	rule.Priority = prio
	if err := netlink.RuleAdd(rule); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("policyRouting: add rule from %s lookup %d: %w", src, table, err)
	}
	return nil
}

// RemovePolicy deletes the rules pointing at link's policy table and the routes in it.
func RemovePolicy(link netlink.Link, p PolicyRouting) error {
	table := policyTable(p, link)
	rules, err := netlinksafe.RuleListFiltered(netlink.FAMILY_ALL, &netlink.Rule{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("policyRouting: list rules of table %d: %w", table, err)
	}
	for i := range rules {
		if err := netlink.RuleDel(&rules[i]); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("policyRouting: delete rule of table %d: %w", table, err)
		}
	}
	_, err = DeleteRoutes(link, table, func(netlink.Route) bool { return true })
	return err
}

// CheckPolicy verifies that every address has its rule.
func CheckPolicy(link netlink.Link, p PolicyRouting, addrs []netip.Prefix) error {
	table := policyTable(p, link)
	rules, err := netlinksafe.RuleListFiltered(netlink.FAMILY_ALL, &netlink.Rule{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("policyRouting: list rules of table %d: %w", table, err)
	}
	for _, a := range addrs {
		host := netip.PrefixFrom(a.Addr(), a.Addr().BitLen())
		found := false
		for _, r := range rules {
			if p, ok := prefixOf(r.Src, false); ok && p == host {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("policyRouting: rule from %s lookup %d is missing", a.Addr(), table)
		}
	}
	return nil
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func zeroOf(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}
