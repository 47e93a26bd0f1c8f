package spec

import (
	"net/netip"

	"k8s.io/apimachinery/pkg/labels"
)

// Policy is a MultiNetworkPolicy parsed and validated: what enforcement needs, nothing else.
// It is immutable once parsed and shared between goroutines.
type Policy struct {
	Namespace, Name string
	// Networks are the networks it applies to, "namespace/name" each (PolicyForAnnotation,
	// a bare name resolved in the policy's namespace), sorted, without duplicates.
	Networks []string
	// PodSelector selects the pods of Namespace it applies to (labels.Everything() for {}).
	PodSelector labels.Selector
	// Ingress and Egress say whether it isolates that direction (policyTypes, or when absent:
	// ingress always, egress when it has egress rules).
	Ingress, Egress bool
	IngressRules    []Rule // OR'ed; none with Ingress set: deny all ingress
	EgressRules     []Rule
}

// Rule is one ingress or egress rule: traffic to or from any of Peers on any of Ports.
type Rule struct {
	// Peers, none: every address. Else the OR of each.
	Peers []Peer
	// Ports, none: every port and protocol. Else the OR of each.
	Ports []Port
}

// Peer is one element of from/to: pods (by selectors) or an ipBlock.
type Peer struct {
	// PodSelector selects pods (nil: every pod of the namespaces NamespaceSelector selects).
	PodSelector labels.Selector
	// NamespaceSelector selects the namespaces of the pods; nil: the policy's own namespace.
	NamespaceSelector labels.Selector
	// Block, when set, is an ipBlock; the selectors are nil then.
	Block *Block
}

// Block is an ipBlock: CIDR minus Except (each inside CIDR). Prefixes are masked.
type Block struct {
	CIDR   netip.Prefix
	Except []netip.Prefix
}

// Port is one entry of ports: a protocol and a port, a port range, or a named port.
type Port struct {
	Protocol Protocol // never empty: TCP when the object left it out
	// Number and End: Number 0 = every port of Protocol; End 0 = Number alone, else the
	// inclusive range Number..End (endPort).
	Number, End uint16
	// Name is a named port (a container port's name), resolved per pod; Number is 0 then.
	Name string
}

// Protocol is TCP, UDP or SCTP.
type Protocol string

// The protocols a port may name.
const (
	TCP  Protocol = "TCP"
	UDP  Protocol = "UDP"
	SCTP Protocol = "SCTP"
)
