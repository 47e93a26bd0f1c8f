// Package compile turns MultiNetworkPolicies and what is known of the pods into the rules of
// one pod's interfaces (a Ruleset each): which policies select the interface, whether each
// direction is isolated, and which peer addresses and ports it allows. It is a pure function
// of its inputs: no API, no netlink. It also tells which pods an event can affect, so that a
// change reprograms only those.
package compile

import (
	"net/netip"

	"github.com/multinet/multinet/internal/policy/spec"
)

// Pod is what the policy engine knows of a pod, local or remote.
type Pod struct {
	Namespace, Name string
	Labels          map[string]string
	// Addresses by network ("namespace/name" of the NAD): the pod's addresses on it.
	Addresses map[string][]netip.Addr
	// Ports are the pod's containers' named ports.
	Ports []NamedPort
}

// NamedPort is a container port with a name.
type NamedPort struct {
	Name     string
	Protocol spec.Protocol
	Port     uint16
}

// Interface is one secondary interface of a local pod.
type Interface struct {
	IfName  string
	Network string // "namespace/name" of its NAD
}

// Ruleset is the rules of one interface of a pod. A nil direction is not isolated: all of
// its traffic passes.
type Ruleset struct {
	IfName   string
	Network  string
	Policies []string // "namespace/name" of the policies that select it, sorted
	Ingress  *Direction
	Egress   *Direction
}

// Direction is an isolated direction: what is allowed, everything else is dropped (beyond
// the replies of allowed flows and what always passes: neighbour discovery, DHCP).
type Direction struct {
	Allow []Allow // OR'ed; empty: deny all
}

// Allow lets traffic through to or from Addrs (the remote end: the source of ingress, the
// destination of egress) on Ports.
type Allow struct {
	// Any: every address; else Addrs (masked, may be empty: then it matches nothing).
	Any   bool
	Addrs []netip.Prefix
	// Ports, none: every protocol and port.
	Ports []PortRange
}

// PortRange is a protocol and an inclusive port range; First 0 means every port.
type PortRange struct {
	Protocol    spec.Protocol
	First, Last uint16
}
