// Command multinet-dhcp is multinet's DHCP IPAM plugin: a NAD uses it with
// "ipam": {"type": "multinet-dhcp"}; the leases themselves are kept by multinetd.
// See docs/dhcp.md.
package main

import "github.com/multinet/multinet/internal/dhcp/ipam"

func main() { ipam.Main() }
