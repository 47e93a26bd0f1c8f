// Package blocks is the IPBlock custom resource (ipam.multinet.io/v1alpha1): one block of a
// multinet-ipam pool, claimed by one node, with the addresses allocated in it. It holds the
// type, a small client whose Update is a compare-and-swap on resourceVersion, and an informer
// indexed by pool and by node. It decides nothing.
package blocks

import (
	"fmt"
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// API coordinates.
const (
	Group    = "ipam.multinet.io"
	Version  = "v1alpha1"
	Resource = "ipblocks"
	Kind     = "IPBlock"
)

// Labels set on every block, for selectors and kubectl.
const (
	PoolLabel = "ipam.multinet.io/pool" // a hash of Spec.Pool (labels are short)
	NodeLabel = "ipam.multinet.io/node" // Spec.Node
)

// IPBlock is one block of a pool. Its name is chosen by the allocator; it is cluster-scoped.
type IPBlock struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              IPBlockSpec `json:"spec"`
}

// IPBlockSpec is the block's state. The node with affinity allocates in the block on its own
// (its local record is authoritative) and writes its allocations back in batches; once the
// block is Shared, every allocation in it, the owner's included, is a compare-and-swap of
// this object.
type IPBlockSpec struct {
	Pool        string                `json:"pool"`              // pool identity (pool.Range.Pool)
	Network     string                `json:"network,omitempty"` // network_name, else the CNI network name, for people
	CIDR        string                `json:"cidr"`
	Node        string                `json:"node,omitempty"`        // node with affinity; empty: none (every allocation by CAS)
	Shared      bool                  `json:"shared,omitempty"`      // the owner has written back and allocates by CAS too
	ShareWanted []string              `json:"shareWanted,omitempty"` // nodes asking the owner to share
	Allocations map[string]Allocation `json:"allocations,omitempty"` // by address
	Used        int                   `json:"used"`                  // len(Allocations), for printer columns
	Free        int                   `json:"free"`                  // addresses of the block still free in the pool's range
}

// Allocation is one address in use (or held for a StatefulSet pod after its DEL).
type Allocation struct {
	Node        string       `json:"node"`                  // node that allocated it
	Pod         string       `json:"pod"`                   // namespace/name
	UID         string       `json:"uid,omitempty"`         // pod UID
	ContainerID string       `json:"containerID,omitempty"` // sandbox
	IfName      string       `json:"ifname,omitempty"`
	HeldUntil   *metav1.Time `json:"heldUntil,omitempty"` // released with a sticky hold: free after this
}

// IPBlockList is a list of IPBlocks, as the API server returns it.
type IPBlockList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPBlock `json:"items"`
}

// Prefix parses Spec.CIDR, which must be a masked prefix (no host bits set).
func (b *IPBlock) Prefix() (netip.Prefix, error) {
	p, err := netip.ParsePrefix(b.Spec.CIDR)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("ipblock %q: cidr: %w", b.Name, err)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("ipblock %q: cidr %q has host bits set", b.Name, b.Spec.CIDR)
	}
	return p, nil
}

// Recount sets Spec.Used to the number of allocations and Spec.Free to free, the addresses
// of the block still free in the pool's range (which only the caller knows).
func (b *IPBlock) Recount(free int) {
	b.Spec.Used = len(b.Spec.Allocations)
	b.Spec.Free = free
}
