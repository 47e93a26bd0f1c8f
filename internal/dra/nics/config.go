package nics

import (
	"errors"
	"fmt"
	"path"
)

// DefaultDriver is the driver name published when Config.Driver is empty.
const DefaultDriver = "nic.multinet.io"

// Config selects which host links the driver publishes.
type Config struct {
	// Driver is the DRA driver name (a DNS subdomain); DefaultDriver when empty.
	Driver string `json:"driver,omitempty"`
	// Include lists glob patterns (path.Match syntax, e.g. "eth[1-9]*", "ens*") of the
	// link names to publish; a link must match one.
	Include []string `json:"include"`
	// Exclude lists glob patterns of link names never published, even when included.
	Exclude []string `json:"exclude,omitempty"`
	// ExcludeDefaultRoute keeps the links carrying a default route (the node's uplink) out;
	// nil means true.
	ExcludeDefaultRoute *bool `json:"excludeDefaultRoute,omitempty"`
	// ResourceName is the k8s.cni.cncf.io/resourceName attribute of every device, the value a
	// NAD's k8s.v1.cni.cncf.io/resourceName annotation names; none when empty.
	ResourceName string `json:"resourceName,omitempty"`
}

// WithDefaults returns c with Driver and ExcludeDefaultRoute set when they were not.
func (c Config) WithDefaults() Config {
	if c.Driver == "" {
		c.Driver = DefaultDriver
	}
	if c.ExcludeDefaultRoute == nil {
		yes := true
		c.ExcludeDefaultRoute = &yes
	}
	return c
}

// Validate reports a pattern that path.Match rejects, a missing Include or a resource name
// that cannot be an attribute value.
func (c Config) Validate() error {
	if len(c.Include) == 0 {
		return errors.New("nic driver config: include: at least one pattern is needed")
	}
	for _, p := range append(append([]string{}, c.Include...), c.Exclude...) {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("nic driver config: pattern %q: %w", p, err)
		}
	}
	if len(c.ResourceName) > maxAttributeValue {
		return fmt.Errorf("nic driver config: resourceName %q is longer than %d characters", c.ResourceName, maxAttributeValue)
	}
	return nil
}

// selects tells whether the link named name is published (default routes aside).
func (c Config) selects(name string) bool {
	return matchAny(c.Include, name) && !matchAny(c.Exclude, name)
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}
