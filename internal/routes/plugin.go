package routes

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// CmdAdd applies the configured routes to the interface handed over by the previous plugin
// and prints the previous result with the routes this plugin owns added to it.
func CmdAdd(args *skel.CmdArgs) error {
	conf, spec, err := ParseNetConf(args.StdinData)
	if err != nil {
		return err
	}
	if conf.PrevResult == nil {
		return fmt.Errorf("multinet-routes must be chained after a plugin that returns a result: prevResult missing")
	}
	result, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return fmt.Errorf("prevResult: convert to %s: %w", types100.ImplementedSpecVersion, err)
	}
	err = ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
		_, err := Apply(args.IfName, spec, result)
		return err
	})
	if err != nil {
		return err
	}
	return types.PrintResult(result, conf.CNIVersion)
}

// CmdDel removes the routes this plugin installed on the interface (those carrying Proto whose
// destination is in prevResult, or all of them without a prevResult) and its policy routing.
// A missing netns or interface means there is nothing left to remove.
func CmdDel(args *skel.CmdArgs) error {
	conf, spec, err := ParseNetConf(args.StdinData)
	if err != nil {
		return err
	}
	if args.Netns == "" {
		return nil
	}
	var owned map[netip.Prefix]bool
	if conf.PrevResult != nil {
		res, err := types100.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return fmt.Errorf("prevResult: convert to %s: %w", types100.ImplementedSpecVersion, err)
		}
		owned = map[netip.Prefix]bool{}
		for _, r := range res.Routes {
			if p, ok := prefixOf(&r.Dst, true); ok {
				owned[p] = true
			}
		}
	}
	err = ns.WithNetNSPath(args.Netns, func(ns.NetNS) error { return Remove(args.IfName, spec, owned) })
	var missing ns.NSPathNotExistErr
	if errors.As(err, &missing) {
		return nil
	}
	return err
}

// CmdCheck verifies that the routes recorded in prevResult that this plugin owns are still in
// the kernel, that no default route is on the interface when it was to be dropped, and that
// the policy rules exist.
func CmdCheck(args *skel.CmdArgs) error {
	conf, spec, err := ParseNetConf(args.StdinData)
	if err != nil {
		return err
	}
	if spec.SkipCheck {
		return nil
	}
	if conf.PrevResult == nil {
		return fmt.Errorf("multinet-routes CHECK: prevResult missing")
	}
	result, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return fmt.Errorf("prevResult: convert to %s: %w", types100.ImplementedSpecVersion, err)
	}
	return ns.WithNetNSPath(args.Netns, func(ns.NetNS) error { return Check(args.IfName, spec, result) })
}

// CmdStatus reports readiness; the plugin needs nothing outside the netns.
func CmdStatus(*skel.CmdArgs) error { return nil }

// CmdGC has nothing to collect: everything the plugin creates lives in the pod's netns.
func CmdGC(*skel.CmdArgs) error { return nil }

// Remove deletes, in the current netns, the routes with Proto on ifname whose destination is
// in owned (every one of them when owned is nil), then the interface's policy routing.
func Remove(ifname string, spec *Spec, owned map[netip.Prefix]bool) error {
	link, err := lookupLink(ifname)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = DeleteRoutes(link, unix.RT_TABLE_MAIN, func(r netlink.Route) bool {
		return r.Protocol == Proto && (owned == nil || owned[routeDst(r)])
	})
	if err != nil {
		return err
	}
	if spec.Policy != nil {
		return RemovePolicy(link, *spec.Policy)
	}
	return nil
}

// Check verifies the state Apply left, in the current netns.
func Check(ifname string, spec *Spec, result *types100.Result) error {
	link, err := lookupLink(ifname)
	if err != nil {
		return err
	}
	in := readResult(result, ifname)
	if len(in.addrs) == 0 {
		if in.addrs, err = globalAddrs(link); err != nil {
			return err
		}
	}
	wants, err := wantedRoutes(spec, in)
	if err != nil {
		return err
	}
	recorded := map[netip.Prefix]bool{}
	for _, r := range result.Routes {
		if p, ok := prefixOf(&r.Dst, true); ok {
			recorded[p] = true
		}
	}
	main, err := tableRoutes(unix.RT_TABLE_MAIN)
	if err != nil {
		return err
	}
	for _, w := range wants {
		if recorded[w.Dst] && !hasRoute(main, link, w) {
			return fmt.Errorf("%s: route to %s via %s dev %s is missing", w.Field, w.Dst, w.GW, ifname)
		}
	}
	if spec.IgnoreGateway || spec.FlushGateway {
		for _, r := range main {
			if r.LinkIndex == link.Attrs().Index && isDefault(r) {
				return fmt.Errorf("default route via %s dev %s is present but should have been removed", r.Gw, ifname)
			}
		}
	}
	if spec.Policy != nil {
		return CheckPolicy(link, *spec.Policy, in.addrs)
	}
	return nil
}

func hasRoute(rs []netlink.Route, link netlink.Link, w Want) bool {
	for _, r := range rs {
		if routeDst(r) == w.Dst && r.LinkIndex == link.Attrs().Index && (!w.GW.IsValid() || addrOf(r.Gw) == w.GW) {
			return true
		}
	}
	return false
}
