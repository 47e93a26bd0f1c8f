// Command multinet-ipam is multinet's cluster-wide IPAM plugin: a NAD uses it with
// "ipam": {"type": "multinet-ipam", "range": "10.1.0.0/16"} (Whereabouts' keys are read as
// they are); the addresses themselves are allocated by multinetd. See docs/ipam.md.
package main

import "github.com/multinet/multinet/internal/dhcp/ipam"

func main() { ipam.Cluster.Main() }
