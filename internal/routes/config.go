package routes

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Route is one static route as NADs write it, in the route-override shape
// {"dst": "<cidr>", "gw": "<ip>"}. Without gw the route goes via the interface's gateway of the
// same family from the previous result, or is a direct (link-scope) route if there is none.
type Route struct {
	Dst string `json:"dst"`
	GW  string `json:"gw,omitempty"`
}

// Subnet is one member of a subnet group: the gateway that serves it.
type Subnet struct {
	GW string `json:"gw"`
}

// SubnetGroup is a set of subnets forming one routed domain, keyed by CIDR.
type SubnetGroup struct {
	Subnets map[string]Subnet `json:"subnets"`
}

// Bool is a JSON boolean that also accepts the strings "true" and "false", as NADs written
// for route-override often carry ("flushroutes": "true").
type Bool bool

// UnmarshalJSON accepts true, false, "true" and "false".
func (b *Bool) UnmarshalJSON(data []byte) error {
	switch strings.ToLower(strings.Trim(string(data), `"`)) {
	case "true":
		*b = true
	case "false", "", "null":
		*b = false
	default:
		return fmt.Errorf("invalid boolean %s", data)
	}
	return nil
}

// PolicyRouting configures source-based routing for the interface: a routing table of its own
// and one rule per address, so replies leave through the interface the request came in on.
// In JSON it is either true or an object {"table": N, "priority": P}.
type PolicyRouting struct {
	// Table is the routing table for the interface; 0 means DefaultPolicyTableBase + ifindex.
	Table int `json:"table,omitempty"`
	// Priority is the priority of the "from <address>" rules; 0 means DefaultRulePriority.
	Priority int `json:"priority,omitempty"`
}

// DefaultPolicyTableBase plus the interface index is the table used when none is configured.
const DefaultPolicyTableBase = 10000

// DefaultRulePriority is the priority of policy rules when none is configured: before the
// main table (32766).
const DefaultRulePriority = 1000

type policyRoutingJSON PolicyRouting

// UnmarshalJSON accepts true, false or an object.
func (p *PolicyRouting) UnmarshalJSON(data []byte) error {
	var b Bool
	if err := b.UnmarshalJSON(data); err == nil {
		*p = PolicyRouting{}
		if !b {
			p.Table = -1 // disabled marker, cleared by compile
		}
		return nil
	}
	return json.Unmarshal(data, (*policyRoutingJSON)(p))
}

// PodArgs are the per-pod inputs found in the conf's args.cni (a selection element's
// cni-args): extra routes, and the route-override args.
type PodArgs struct {
	Routes       []Route `json:"routes,omitempty"`
	AddRoutes    []Route `json:"addRoutes,omitempty"`
	DelRoutes    []Route `json:"delRoutes,omitempty"`
	FlushRoutes  Bool    `json:"flushRoutes,omitempty"`
	FlushGateway Bool    `json:"flushGateway,omitempty"`
}

// NetConf is the multinet-routes plugin configuration. JSON field names match
// case-insensitively, so route-override's lower-case "addroutes" and friends are accepted.
type NetConf struct {
	types.PluginConf

	SubnetGroups  map[string]SubnetGroup `json:"subnetGroups,omitempty"`
	AddRoutes     []Route                `json:"addRoutes,omitempty"`
	DelRoutes     []Route                `json:"delRoutes,omitempty"`
	FlushRoutes   Bool                   `json:"flushRoutes,omitempty"`
	FlushGateway  Bool                   `json:"flushGateway,omitempty"`
	IgnoreGateway Bool                   `json:"ignoreGateway,omitempty"`
	SkipCheck     Bool                   `json:"skipCheck,omitempty"`
	PolicyRouting *PolicyRouting         `json:"policyRouting,omitempty"`

	Args *struct {
		CNI *PodArgs `json:"cni,omitempty"`
	} `json:"args,omitempty"`
	RuntimeConfig struct {
		Routes []Route `json:"routes,omitempty"`
	} `json:"runtimeConfig,omitempty"`
}

// StaticRoute is a validated route. A zero GW means "the interface's gateway, else direct".
type StaticRoute struct {
	Field string // where it came from, for errors: addRoutes[2], args.cni.routes[0]
	Dst   netip.Prefix
	GW    netip.Addr
}

// Spec is a validated NetConf: everything the plugin needs to act, with no strings to parse.
type Spec struct {
	Groups        []Group
	Add           []StaticRoute
	Del           []StaticRoute
	FlushRoutes   bool
	FlushGateway  bool
	IgnoreGateway bool
	SkipCheck     bool
	Policy        *PolicyRouting
}

// ParseNetConf decodes and validates the plugin's stdin, including prevResult.
func ParseNetConf(data []byte) (*NetConf, *Spec, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(data, conf); err != nil {
		return nil, nil, fmt.Errorf("failed to parse multinet-routes config: %w", err)
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return nil, nil, fmt.Errorf("prevResult: %w", err)
	}
	spec, err := conf.Compile()
	if err != nil {
		return nil, nil, err
	}
	return conf, spec, nil
}

// Compile validates the configuration and the per-pod inputs into a Spec.
func (c *NetConf) Compile() (*Spec, error) {
	groups, err := CompileGroups(c.SubnetGroups, "subnetGroups")
	if err != nil {
		return nil, err
	}
	spec := &Spec{
		Groups:        groups,
		FlushRoutes:   bool(c.FlushRoutes),
		FlushGateway:  bool(c.FlushGateway),
		IgnoreGateway: bool(c.IgnoreGateway),
		SkipCheck:     bool(c.SkipCheck),
	}
	if c.PolicyRouting != nil && c.PolicyRouting.Table >= 0 {
		p := *c.PolicyRouting
		spec.Policy = &p
	}
	lists := []struct {
		field string
		in    []Route
		out   *[]StaticRoute
	}{
		{"addRoutes", c.AddRoutes, &spec.Add},
		{"delRoutes", c.DelRoutes, &spec.Del},
		{"runtimeConfig.routes", c.RuntimeConfig.Routes, &spec.Add},
	}
	if c.Args != nil && c.Args.CNI != nil {
		a := c.Args.CNI
		spec.FlushRoutes = spec.FlushRoutes || bool(a.FlushRoutes)
		spec.FlushGateway = spec.FlushGateway || bool(a.FlushGateway)
		lists = append(lists, []struct {
			field string
			in    []Route
			out   *[]StaticRoute
		}{
			{"args.cni.routes", a.Routes, &spec.Add},
			{"args.cni.addRoutes", a.AddRoutes, &spec.Add},
			{"args.cni.delRoutes", a.DelRoutes, &spec.Del},
		}...)
	}
	for _, l := range lists {
		rs, err := compileRoutes(l.field, l.in)
		if err != nil {
			return nil, err
		}
		*l.out = append(*l.out, rs...)
	}
	return spec, nil
}

func compileRoutes(field string, in []Route) ([]StaticRoute, error) {
	out := make([]StaticRoute, 0, len(in))
	for i, r := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		dst, err := parseCIDR(r.Dst)
		if err != nil {
			return nil, fmt.Errorf("%s.dst: %w", f, err)
		}
		sr := StaticRoute{Field: f, Dst: dst}
		if r.GW != "" {
			gw, err := netip.ParseAddr(r.GW)
			if err != nil {
				return nil, fmt.Errorf("%s.gw: invalid IP %q", f, r.GW)
			}
			if gw.Unmap().Is4() != dst.Addr().Is4() {
				return nil, fmt.Errorf("%s: gw %s and dst %s are of different address families", f, gw, dst)
			}
			sr.GW = gw.Unmap()
		}
		out = append(out, sr)
	}
	return out, nil
}

// parseCIDR parses a network prefix and rejects host bits, which usually hide a typo.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("CIDR %q: write IPv4-mapped networks as IPv4", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("CIDR %q has host bits set (network is %s)", s, p.Masked())
	}
	return p, nil
}

// CompileGroups validates subnet groups; field names the config key in errors. Groups come
// out sorted by name and subnets by address, so plans are deterministic.
func CompileGroups(in map[string]SubnetGroup, field string) ([]Group, error) {
	names := make([]string, 0, len(in))
	for name := range in {
		names = append(names, name)
	}
	sort.Strings(names)
	groups := make([]Group, 0, len(names))
	for _, name := range names {
		g, err := compileGroup(name, in[name], fmt.Sprintf("%s[%q].subnets", field, name))
		if err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}
	return groups, nil
}

func compileGroup(name string, in SubnetGroup, field string) (Group, error) {
	if len(in.Subnets) == 0 {
		return Group{}, fmt.Errorf("%s: no subnets", field)
	}
	g := Group{Name: name, Subnets: make([]GroupSubnet, 0, len(in.Subnets))}
	seen := make(map[netip.Prefix]string, len(in.Subnets))
	for cidr, s := range in.Subnets {
		p, err := parseCIDR(cidr)
		if err != nil {
			return Group{}, fmt.Errorf("%s: %w", field, err)
		}
		if other, dup := seen[p]; dup {
			return Group{}, fmt.Errorf("%s: %q and %q are the same subnet", field, other, cidr)
		}
		seen[p] = cidr
		gw, err := netip.ParseAddr(strings.TrimSpace(s.GW))
		if err != nil {
			return Group{}, fmt.Errorf("%s[%q].gw: invalid IP %q", field, cidr, s.GW)
		}
		gw = gw.Unmap()
		if gw.Is4() != p.Addr().Is4() {
			return Group{}, fmt.Errorf("%s[%q].gw: %s is not of the subnet's address family", field, cidr, gw)
		}
		g.Subnets = append(g.Subnets, GroupSubnet{Prefix: p, GW: gw})
	}
	sort.Slice(g.Subnets, func(i, j int) bool { return lessPrefix(g.Subnets[i].Prefix, g.Subnets[j].Prefix) })
	return g, nil
}

func lessPrefix(a, b netip.Prefix) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}
