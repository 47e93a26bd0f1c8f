// Package nics is a DRA driver for host network interfaces: a kubelet plugin that publishes
// the node's spare NICs, chosen by Config, as devices of one ResourceSlice pool named after
// the node, and records which claim holds which NIC.
//
// The driver never moves a link. Prepare only records the claim's devices (in a state file,
// before answering, so a restart keeps them) and returns no CDI device: multinetd's
// host-device delegate moves the NIC into the pod at CNI ADD and gives it back at DEL. While a
// claim is prepared its devices stay published from the recorded copy, so an allocation stays
// valid when the link has left the host's namespace.
//
// Each device carries these attributes (unqualified names belong to the driver's domain, so a
// CEL selector reads them as device.attributes["nic.multinet.io"].ifName):
//
//	ifName, mac, mtu, speed (Mbps, when sysfs knows it), pciAddress, numaNode (when the link
//	has a PCI device behind it), resource.kubernetes.io/pciBusID (the standard name of the
//	same PCI address), k8s.cni.cncf.io/resourceName (Config.ResourceName, when set: a
//	third-party attribute needs its domain, and "resourceName" is a valid C identifier).
//
// Discovery is a pure function of a link list and a sysfs tree (Discover); Host reads both
// from the kernel. Run starts the kubelet plugin and republishes on every link event
// (a netlink link subscription) and on a periodic rescan, which also catches a moved default
// route.
package nics
