// Package policy enforces MultiNetworkPolicy in multinetd: for every sandbox of this node it
// keeps the rules of the secondary interfaces that policies select programmed in the pod's
// network namespace (package firewall), from the pod's first packet on.
//
// The rules of an interface are programmed inside the CNI ADD or the hot plug that creates it
// (Enforce, before it returns), removed with it, and changed afterwards only for the sandboxes
// an event can affect: a policy selects them, or selects peers that a pod, namespace or
// address change touches. What a policy allows is computed by package compile from the
// policies, the namespaces' labels and the peers: the addresses this node's own records give
// for its pods, and the network-status of pods elsewhere, which a trimmed, cluster-wide pod
// cache holds only while some policy selects peers by label.
package policy
