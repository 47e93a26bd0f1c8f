// Package testbed starts the real components that multinet's integration tests run against:
// an etcd and a kube-apiserver on loopback ports (with the NetworkAttachmentDefinition CRD
// from deploy/crds installed), and network namespaces that stand in for pod sandboxes.
//
// The binaries are not found on PATH: Tools runs hack/tools.sh, which builds the pinned
// versions once and caches them outside the clone (under $XDG_CACHE_HOME/multinet). A cold
// kube-apiserver build takes several minutes; later runs reuse the cache.
//
// The control plane runs unprivileged. Network namespaces need root (CAP_SYS_ADMIN and
// CAP_NET_ADMIN): tests that use them call RequireRoot, which fails rather than skips,
// because CI runs them as root and a silent skip would hide them.
//
// Every process and namespace is torn down in t.Cleanup, also when the test fails; child
// processes additionally get SIGKILL from the kernel if the test binary dies.
package testbed
