package routes

import (
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// SeedConfig is the route-injector YAML of the ddsnet4u init-container, read unchanged:
//
//	interface: net1
//	subnets:            # one unnamed group
//	  10.0.0.0/8: {gw: 10.0.0.1}
//	vrf:                # and/or named groups
//	  chile:
//	    subnets:
//	      139.229.147.0/24: {gw: 139.229.147.254}
type SeedConfig struct {
	Interface string                 `json:"interface"`
	Subnets   map[string]Subnet      `json:"subnets,omitempty"`
	VRF       map[string]SubnetGroup `json:"vrf,omitempty"`
}

// SeedGroupName is the name the top-level "subnets" map gets as a group.
const SeedGroupName = "subnets"

// ParseSeed parses the YAML and returns the interface and the validated groups. file names
// the source in errors.
func ParseSeed(file string, data []byte) (string, []Group, error) {
	var c SeedConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		return "", nil, fmt.Errorf("config %s: %w", file, err)
	}
	c.Interface = strings.TrimSpace(c.Interface)
	if c.Interface == "" {
		return "", nil, fmt.Errorf("config %s: \"interface\" key missing", file)
	}
	if len(c.Subnets) == 0 && len(c.VRF) == 0 {
		return "", nil, fmt.Errorf("config %s: neither \"subnets\" nor \"vrf\" is set", file)
	}
	all := make(map[string]SubnetGroup, len(c.VRF)+1)
	for name, g := range c.VRF {
		all[name] = g
	}
	field := "vrf"
	if len(c.Subnets) > 0 {
		if _, clash := all[SeedGroupName]; clash {
			return "", nil, fmt.Errorf("config %s: vrf group %q clashes with the top-level \"subnets\"", file, SeedGroupName)
		}
		all[SeedGroupName] = SubnetGroup{Subnets: c.Subnets}
		field = "groups"
	}
	groups, err := CompileGroups(all, field)
	if err != nil {
		return "", nil, fmt.Errorf("config %s: %w", file, err)
	}
	return c.Interface, groups, nil
}
