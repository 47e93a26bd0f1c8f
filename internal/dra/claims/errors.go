package claims

import (
	"errors"
	"fmt"
)

// The faults Resolve reports, each wrapped in an *Error that names where it was found.
var (
	// ErrClaimPending: the pod's claim has no ResourceClaim yet (its generated name is not
	// in the pod's status, or the ResourceClaim is not among those given).
	ErrClaimPending = errors.New("no ResourceClaim yet")
	// ErrNotAllocated: the ResourceClaim has no allocation.
	ErrNotAllocated = errors.New("not allocated")
	// ErrNotReserved: the ResourceClaim is reserved for other consumers, not for the pod.
	ErrNotReserved = errors.New("not reserved for the pod")
	// ErrDeviceNotFound: an allocated device is in no ResourceSlice of its driver and pool.
	ErrDeviceNotFound = errors.New("allocated, but in no ResourceSlice of its driver and pool")
	// ErrTooFewDevices: the pod's claims have devices of the NAD's resourceName, but fewer
	// than the attachments that use it (Error.Claim is the last claim that had one).
	ErrTooFewDevices = errors.New("fewer allocated devices than attachments")
	// ErrNoClaim: no claim of the pod has a device of the NAD's resourceName.
	ErrNoClaim = errors.New("no claim of the pod provides the resourceName")
)

// Error is a resolution fault for one attachment of one pod.
type Error struct {
	Pod          string // "namespace/name"
	NAD          string // "namespace/name" of the attachment's NetworkAttachmentDefinition
	ResourceName string // the NAD's resourceName
	PodClaim     string // the claim's name in pod.spec.resourceClaims, when one is at fault
	Claim        string // "namespace/name" of the ResourceClaim, when known
	Device       string // "driver/pool/device", when a device is at fault
	Err          error  // one of the Err* values above
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("pod %s: network %q (resourceName %q)", e.Pod, e.NAD, e.ResourceName)
	switch {
	case e.Claim != "":
		msg += fmt.Sprintf(": claim %q", e.Claim)
	case e.PodClaim != "":
		msg += fmt.Sprintf(": pod claim %q", e.PodClaim)
	}
	if e.Device != "" {
		msg += fmt.Sprintf(": device %q", e.Device)
	}
	return msg + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }
