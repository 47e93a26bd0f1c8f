// Package routes makes routes on a pod's secondary interfaces a declared property of the
// network. It holds the multinet-routes chained CNI plugin (ADD/DEL/CHECK on the interface and
// result handed over by the previous plugin), the one-shot "apply" mode for init-containers
// that reads the ddsnet4u route-injector YAML, and MoveDefaultRoute for the daemon.
//
// The layers are kept apart: parsing (config.go, seed.go) and subnet-group planning (plan.go)
// are pure functions of their inputs; kernel.go and policy.go apply a plan with netlink in the
// current network namespace; plugin.go, oneshot.go and defaultroute.go are the edges that enter
// the namespace and report.
//
// Every route this package installs carries the routing protocol number Proto, so the kernel
// itself records which routes are ours: DEL removes exactly those, and routes that were
// already present (added by IPAM, by hand or by another tool) are left alone.
package routes
