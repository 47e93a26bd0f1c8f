// Package claims connects a pod's device-backed networks to Dynamic Resource Allocation
// (resource.k8s.io/v1): it finds, for each NetworkAttachmentDefinition annotated
// k8s.v1.cni.cncf.io/resourceName, the device a ResourceClaim of the pod was allocated, says
// what its delegate is given, and builds the claim's per-device status (KEP-4817). Resolve
// and the builders are pure functions of the objects they are handed; Gather reads those
// objects through Source, a small interface (informer listers or a client).
//
// # Resolution
//
// Resolve follows pod.spec.resourceClaims in order: a claim named directly
// (resourceClaimName) is used as it is; one made from a template is found by the name the
// control plane generated, in pod.status.resourceClaimStatuses (an entry without a name
// there means no claim was needed, and is skipped). The claim made for extended resources
// (pod.status.extendedResourceClaimStatus) comes last. Each claim must be allocated and
// reserved for the pod (status.reservedFor). Its devices are taken in allocation order
// (status.allocation.devices.results) and looked up in the ResourceSlices of their driver
// and pool (the slices of the pool's newest generation only). A claim the pod names twice
// counts once; a device allocated with adminAccess (to watch it, not to use it) serves no
// attachment.
//
// A device serves an attachment when its attribute k8s.cni.cncf.io/resourceName equals the
// NAD's resourceName. Attachments take devices in their planned order, each the first device
// no earlier attachment took, so several claims and several devices of one class go to
// distinct attachments, always the same way for the same objects. A claim that cannot be
// read (no ResourceClaim yet, not allocated, not reserved for the pod) or a device missing
// from every slice fails only the attachments that would have to look past it: a device it
// hides might be the one they need, and taking a later one would change the assignment
// once it is known.
//
// # Attribute names
//
// Attribute names follow the DRA rules (resourcev1.QualifiedName): a name without a domain
// belongs to the domain of the driver that publishes it. Looking up a fully qualified name
// "domain/id" finds the key "domain/id", or the bare key "id" when domain is the driver's
// name, as the scheduler's allocator does. The names read are:
//
//   - k8s.cni.cncf.io/resourceName (string): the NAD's resourceName, as Multus reads it;
//   - k8s.cni.cncf.io/deviceID (string): the ID a delegate takes (runtimeConfig.deviceID),
//     as Multus reads it; when absent, the PCI address, else the interface name;
//   - ifName, pciAddress, mac (strings): in the driver's own domain (dra.net/ifName for the
//     driver dra.net; "ifName" for any driver), else in k8s.cni.cncf.io;
//   - resource.kubernetes.io/pciBusID, the standard attribute, for the PCI address when the
//     driver publishes no pciAddress.
//
// Every attribute of the device is kept on the resolved Device, with its fully qualified
// name.
//
// # Claim status
//
// DeviceStatus builds the status.devices entry of one attached device (conditions Ready and
// NetworkReady, networkData with the interface's name, addresses and MAC) from the same CNI
// result the network-status annotation is built from, in the form kube-apiserver accepts:
// addresses in canonical CIDR form, no duplicates, at most 16; no field past its length
// limit. Entries belong to their drivers, and a driver may write its own conditions and data
// into the entry of a device multinet attached: two ways to write share them.
//
//   - Server-side apply (preferred): StatusApply holds every entry one field manager (the
//     node's multinetd) stands for; kube-apiserver merges entries by key and conditions by
//     type, so the driver's fields stay, and an entry left out of the next apply loses only
//     what that manager had set.
//   - Read, edit, update: SetDeviceStatus and RemoveDeviceStatus edit a claim's list by
//     driver, pool, device and share ID, leaving other entries, other conditions and the
//     driver's data alone, and keep a condition's lastTransitionTime while its status holds.
package claims
