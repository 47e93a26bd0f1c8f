package claims

import (
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Attachment is one device-backed attachment of a pod.
type Attachment struct {
	NAD          string // "namespace/name" of the NetworkAttachmentDefinition
	ResourceName string // its k8s.v1.cni.cncf.io/resourceName annotation
}

// Objects are what Resolve reads: the pod, the ResourceClaims of its namespace (others are
// ignored) and the ResourceSlices of the drivers its claims use.
type Objects struct {
	Pod    *corev1.Pod
	Claims []*resourcev1.ResourceClaim
	Slices []*resourcev1.ResourceSlice
}

// ClaimRef names a ResourceClaim.
type ClaimRef struct {
	Namespace, Name string
	UID             types.UID
}

func (c ClaimRef) String() string { return c.Namespace + "/" + c.Name }

// Device is an allocated device resolved for one attachment.
type Device struct {
	Driver, Pool, Name string
	ShareID            *types.UID // the allocation's share of a device with consumable capacity
	Request            string     // the claim's request it was allocated for
	PodClaim           string     // the claim's name in pod.spec.resourceClaims ("" for extended resources)
	Claim              ClaimRef

	ResourceName string // k8s.cni.cncf.io/resourceName
	DeviceID     string // what runtimeConfig.deviceID carries: k8s.cni.cncf.io/deviceID, else PCIAddress, else IfName
	IfName       string // the host interface name, when published
	PCIAddress   string // the PCI address, when published
	MAC          string // the hardware address, when published
	// Attributes are all the device's attributes, by fully qualified name.
	Attributes map[resourcev1.QualifiedName]resourcev1.DeviceAttribute
}

// ID is "driver/pool/device", as the DRA API names a device.
func (d Device) ID() string { return d.Driver + "/" + d.Pool + "/" + d.Name }

// Resolve returns, for each attachment in order, a distinct allocated device of the pod
// whose resourceName is the attachment's. Its errors are *Error.
func Resolve(obj Objects, atts []Attachment) ([]Device, error) {
	cands := candidates(obj)
	used := make([]bool, len(cands))
	out := make([]Device, 0, len(atts))
	for _, a := range atts {
		i, fault := pick(cands, used, a.ResourceName)
		if fault != nil {
			fault.Pod = obj.Pod.Namespace + "/" + obj.Pod.Name
			fault.NAD, fault.ResourceName = a.NAD, a.ResourceName
			return nil, fault
		}
		used[i] = true
		out = append(out, cands[i].dev)
	}
	return out, nil
}

// pick returns the first unused candidate of resourceName, or the fault that stops the
// search: a claim or device that hides what it holds, or the end of the list.
func pick(cands []candidate, used []bool, resourceName string) (int, *Error) {
	var last *Device
	for i, c := range cands {
		if c.fault != nil {
			f := *c.fault
			return -1, &f
		}
		if c.dev.ResourceName == "" || c.dev.ResourceName != resourceName {
			continue // a device without the attribute serves no NAD
		}
		if !used[i] {
			return i, nil
		}
		last = &cands[i].dev
	}
	if last != nil {
		return -1, &Error{PodClaim: last.PodClaim, Claim: last.Claim.String(), Err: ErrTooFewDevices}
	}
	return -1, &Error{Err: ErrNoClaim}
}

// candidate is one allocated device of the pod's claims, in order, or the fault that keeps
// it (or a whole claim) from being known.
type candidate struct {
	dev   Device
	fault *Error
}

// candidates lists the devices of the pod's claims: claims in order, devices in allocation
// order.
func candidates(obj Objects) []candidate {
	slices := indexSlices(obj.Slices)
	var out []candidate
	seen := map[string]bool{}
	for _, pc := range podClaims(obj.Pod) {
		if pc.claim != "" && seen[pc.claim] {
			continue // a second reference to one claim holds no other device
		}
		seen[pc.claim] = true
		claim, fault := usableClaim(obj, pc)
		if fault != nil {
			out = append(out, candidate{fault: fault})
			continue
		}
		ref := ClaimRef{Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID}
		for _, r := range claim.Status.Allocation.Devices.Results {
			if r.AdminAccess != nil && *r.AdminAccess {
				continue // a device to watch, maybe in use elsewhere: not one to attach
			}
			out = append(out, deviceOf(slices, pc.name, ref, r))
		}
	}
	return out
}

// deviceOf resolves one allocation result against the slices.
func deviceOf(slices sliceIndex, podClaim string, ref ClaimRef, r resourcev1.DeviceRequestAllocationResult) candidate {
	d := Device{
		Driver: r.Driver, Pool: r.Pool, Name: r.Device, ShareID: r.ShareID,
		Request: r.Request, PodClaim: podClaim, Claim: ref,
	}
	dev := slices.find(r.Driver, r.Pool, r.Device)
	if dev == nil {
		return candidate{fault: &Error{PodClaim: podClaim, Claim: ref.String(), Device: d.ID(), Err: ErrDeviceNotFound}}
	}
	describe(&d, dev)
	return candidate{dev: d}
}

// podClaim is one claim of the pod: its name in the pod's spec and the ResourceClaim's
// name, or pending when that is not known yet.
type podClaim struct {
	name    string
	claim   string
	pending bool
}

// podClaims returns the pod's claims in spec order, then the claim made for its extended
// resources. A template's claim that the control plane found unneeded is left out.
func podClaims(pod *corev1.Pod) []podClaim {
	generated := make(map[string]*string, len(pod.Status.ResourceClaimStatuses))
	for _, s := range pod.Status.ResourceClaimStatuses {
		generated[s.Name] = s.ResourceClaimName
	}
	out := make([]podClaim, 0, len(pod.Spec.ResourceClaims)+1)
	for _, c := range pod.Spec.ResourceClaims {
		if c.ResourceClaimName != nil {
			out = append(out, podClaim{name: c.Name, claim: *c.ResourceClaimName})
			continue
		}
		name, known := generated[c.Name]
		switch {
		case !known:
			out = append(out, podClaim{name: c.Name, pending: true})
		case name != nil:
			out = append(out, podClaim{name: c.Name, claim: *name})
		}
	}
	if ext := pod.Status.ExtendedResourceClaimStatus; ext != nil && ext.ResourceClaimName != "" {
		out = append(out, podClaim{claim: ext.ResourceClaimName})
	}
	return out
}

// usableClaim returns the pod claim's ResourceClaim when it is allocated and reserved for
// the pod.
func usableClaim(obj Objects, pc podClaim) (*resourcev1.ResourceClaim, *Error) {
	pod := obj.Pod
	if pc.pending {
		return nil, &Error{PodClaim: pc.name, Err: ErrClaimPending}
	}
	fault := &Error{PodClaim: pc.name, Claim: pod.Namespace + "/" + pc.claim}
	claim := findClaim(obj.Claims, pod.Namespace, pc.claim)
	switch {
	case claim == nil:
		fault.Err = ErrClaimPending
	case claim.Status.Allocation == nil:
		fault.Err = ErrNotAllocated
	case !reservedFor(claim, pod.UID):
		fault.Err = ErrNotReserved
	default:
		return claim, nil
	}
	return nil, fault
}

func findClaim(claims []*resourcev1.ResourceClaim, namespace, name string) *resourcev1.ResourceClaim {
	for _, c := range claims {
		if c != nil && c.Namespace == namespace && c.Name == name {
			return c
		}
	}
	return nil
}

// reservedFor reports whether the claim lists the pod among its consumers.
func reservedFor(claim *resourcev1.ResourceClaim, uid types.UID) bool {
	for _, r := range claim.Status.ReservedFor {
		if r.APIGroup == "" && r.Resource == "pods" && r.UID == uid {
			return true
		}
	}
	return false
}

// sliceIndex holds the devices of each pool's newest generation.
type sliceIndex map[[2]string]*pool

type pool struct {
	generation int64
	devices    map[string]*resourcev1.Device
}

func indexSlices(slices []*resourcev1.ResourceSlice) sliceIndex {
	idx := sliceIndex{}
	for _, s := range slices {
		if s == nil {
			continue
		}
		key := [2]string{s.Spec.Driver, s.Spec.Pool.Name}
		p := idx[key]
		if p == nil || s.Spec.Pool.Generation > p.generation {
			p = &pool{generation: s.Spec.Pool.Generation, devices: map[string]*resourcev1.Device{}}
			idx[key] = p
		}
		if s.Spec.Pool.Generation < p.generation {
			continue
		}
		for i := range s.Spec.Devices {
			p.devices[s.Spec.Devices[i].Name] = &s.Spec.Devices[i]
		}
	}
	return idx
}

func (idx sliceIndex) find(driver, poolName, device string) *resourcev1.Device {
	p := idx[[2]string{driver, poolName}]
	if p == nil {
		return nil
	}
	return p.devices[device]
}
