// Command multinet is the CNI plugin the container runtime runs: a thin shim that forwards
// each invocation to the multinetd daemon on the node.
package main

import "github.com/multinet/multinet/internal/shim"

func main() { shim.Main("multinet: multi-network pods (forwards to multinetd)") }
