// Package pool reads the ipam section of a multinet-ipam network (Whereabouts' fields
// accepted, so a NAD switches by changing its type) and does the address arithmetic of a
// pool split into blocks: which blocks a range spans, which addresses of a block may be
// handed out, what a block object is named. It is pure: no API, no files, no clock.
package pool

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// Defaults.
const (
	DefaultBlockBits4 = 26               // a /26 block: 64 IPv4 addresses
	DefaultBlockBits6 = 122              // a /122 block: 64 IPv6 addresses
	DefaultStickyHold = 10 * time.Minute // a StatefulSet pod's address is kept this long after DEL
)

// Config is the ipam section of a network that uses multinet-ipam.
type Config struct {
	Network     string         // the CNI network's name (top-level "name")
	NetworkName string         // "network_name": pools of equal ranges in different networks are separate
	Ranges      []Range        // "range"/"range_start"/"range_end"/"exclude" and each of "ipRanges"
	Routes      []*types.Route // "routes"
	DNS         types.DNS      // "dns"
	Overlapping bool           // "enable_overlapping_ranges" (default true): one address space per network_name
	StickyHold  time.Duration  // "sticky_hold" (default DefaultStickyHold; "0" turns it off)
}

// Range is one range of addresses, of one family.
type Range struct {
	Subnet    netip.Prefix   // the range's subnet, masked ("range": "10.1.0.0/16")
	Start     netip.Addr     // first address that may be handed out (inclusive)
	End       netip.Addr     // last address that may be handed out (inclusive)
	Exclude   []netip.Prefix // never handed out
	Gateway   netip.Addr     // never handed out; reported in the result (zero: none)
	BlockBits int            // prefix length of the range's blocks
	Pool      string         // identity of the address space the range's blocks belong to (see ID)
}

// ID is the identity of the address space whose blocks a range uses. With overlapping
// (Whereabouts' enable_overlapping_ranges, the default) every range of one network_name and
// family shares one space, "<network_name>/v4" or "/v6": ranges that overlap across networks
// then never hand out one address twice. Without it the space is the subnet's own,
// "<network_name>/<subnet>".
func ID(networkName string, overlapping bool, subnet netip.Prefix) string {
	if !overlapping {
		return networkName + "/" + subnet.String()
	}
	if subnet.Addr().Is4() {
		return networkName + "/v4"
	}
	return networkName + "/v6"
}

// String writes the range as Whereabouts' "start-end/bits" form: "10.1.0.1-10.1.0.254/24".
func (r Range) String() string {
	return r.Start.String() + "-" + r.End.String() + "/" + strconv.Itoa(r.Subnet.Bits())
}
