package attach

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/create"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/dra/claims"
	"github.com/multinet/multinet/internal/plan"
	"github.com/multinet/multinet/internal/status"
)

// ResourceNameAnnotation on a NetworkAttachmentDefinition makes its network device-backed:
// each attachment takes a device, allocated to one of the pod's ResourceClaims, whose
// attribute k8s.cni.cncf.io/resourceName has the annotation's value.
const ResourceNameAnnotation = "k8s.v1.cni.cncf.io/resourceName"

// Claims reads the DRA objects behind device-backed networks and writes what multinet
// reports on a claim (the daemon's API client).
type Claims interface {
	claims.Source
	// ApplyStatus makes entries the status.devices entries this node reports on claim
	// (server-side apply as one field manager): an entry it reported before and not now is
	// cleared. A claim that no longer exists is no error.
	ApplyStatus(ctx context.Context, claim claims.ClaimRef, entries []resourcev1.AllocatedDeviceStatus) error
}

// ErrDevice marks an ADD that failed because the device of a device-backed network could not
// be found for the pod (its claim not yet allocated, no claim providing it, ...).
var ErrDevice = errors.New("device not resolved")

// deviceMeta is the key of an attachment's Meta that holds its device (deviceRecord).
const deviceMeta = "device"

// deviceRecord is what the record keeps of an attachment's device: enough to build the
// claim's status entry and network-status device-info from the record alone.
type deviceRecord struct {
	ClaimNamespace string `json:"claimNamespace"`
	Claim          string `json:"claim"`
	ClaimUID       string `json:"claimUID,omitempty"`
	Generation     int64  `json:"generation,omitempty"`
	Driver         string `json:"driver"`
	Pool           string `json:"pool"`
	Device         string `json:"device"`
	ShareID        string `json:"shareID,omitempty"`
	PCIAddress     string `json:"pciAddress,omitempty"`
}

func (r deviceRecord) claimRef() claims.ClaimRef {
	return claims.ClaimRef{Namespace: r.ClaimNamespace, Name: r.Claim, UID: k8stypes.UID(r.ClaimUID)}
}

func (r deviceRecord) device() claims.Device {
	d := claims.Device{Driver: r.Driver, Pool: r.Pool, Name: r.Device, Claim: r.claimRef(), PCIAddress: r.PCIAddress}
	if r.ShareID != "" {
		id := k8stypes.UID(r.ShareID)
		d.ShareID = &id
	}
	return d
}

// recordedDevice returns the device kept in an attachment's record, if it has one.
func recordedDevice(a *checkpoint.Attachment) (deviceRecord, bool) {
	raw := a.Meta[deviceMeta]
	if raw == "" {
		return deviceRecord{}, false
	}
	var r deviceRecord
	if json.Unmarshal([]byte(raw), &r) != nil || r.Claim == "" {
		return deviceRecord{}, false
	}
	return r, true
}

// hasClaims tells whether the pod asks for any ResourceClaim: without one, a device-backed
// network is attached as its NAD says, as before DRA (the device named in its config).
func hasClaims(pod *corev1.Pod) bool {
	return len(pod.Spec.ResourceClaims) > 0 || pod.Status.ExtendedResourceClaimStatus != nil
}

// resolveDevices gives each device-backed attachment of ds the device the pod's claims
// allocated it (claims.Resolve): its delegate's conflist and capability arguments point at the
// device (claims.DelegateInputs), and its record will keep the device. A claim not allocated
// yet, or an allocated device not published, is ErrTryAgain: the runtime retries the sandbox.
func (m *Manager) resolveDevices(ctx context.Context, pod *corev1.Pod, ds []plan.Delegate) error {
	var idx []int
	var atts []claims.Attachment
	for i := range ds {
		if ds[i].ResourceName != "" {
			idx = append(idx, i)
			atts = append(atts, claims.Attachment{NAD: ds[i].Network, ResourceName: ds[i].ResourceName})
		}
	}
	if len(idx) == 0 || m.Claims == nil || !hasClaims(pod) {
		return nil
	}
	obj, err := claims.Gather(ctx, m.Claims, pod)
	if err != nil { // it names the pod
		return fmt.Errorf("%w (%w, %w)", err, ErrDevice, ErrTryAgain)
	}
	devs, err := claims.Resolve(obj, atts)
	if err != nil {
		// It names the pod, network, resourceName and claim.
		if errors.Is(err, claims.ErrNoClaim) || errors.Is(err, claims.ErrTooFewDevices) {
			return invalidf(types.ErrInvalidNetworkConfig, "%w (%w)", err, ErrDevice)
		}
		return fmt.Errorf("%w (%w, %w)", err, ErrDevice, ErrTryAgain)
	}
	generations := map[k8stypes.UID]int64{}
	for _, c := range obj.Claims {
		generations[c.UID] = c.Generation
	}
	for k, i := range idx {
		d, dev := &ds[i], devs[k]
		in, err := claims.DelegateInputs(dev, d.ConfList)
		if err != nil {
			return invalidf(types.ErrInvalidNetworkConfig, "pod %s/%s: network %q, device %s of claim %s: %v (%w)",
				pod.Namespace, pod.Name, d.Network, dev.ID(), dev.Claim, err, ErrDevice)
		}
		d.ConfList = in.ConfList
		if len(in.CapabilityArgs) > 0 {
			if d.CapabilityArgs == nil {
				d.CapabilityArgs = map[string]any{}
			}
			for name, v := range in.CapabilityArgs {
				d.CapabilityArgs[name] = v
			}
		}
		rec := deviceRecord{ClaimNamespace: dev.Claim.Namespace, Claim: dev.Claim.Name, ClaimUID: string(dev.Claim.UID),
			Generation: generations[dev.Claim.UID], Driver: dev.Driver, Pool: dev.Pool, Device: dev.Name, PCIAddress: dev.PCIAddress}
		if dev.ShareID != nil {
			rec.ShareID = string(*dev.ShareID)
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("pod %s/%s: network %q: encode device: %w", pod.Namespace, pod.Name, d.Network, err)
		}
		if d.Meta == nil {
			d.Meta = map[string]string{}
		}
		d.Meta[deviceMeta] = string(raw)
		m.Log.Info("device resolved", "pod", pod.Namespace+"/"+pod.Name, "network", d.Network, "ifname", d.IfName,
			"device", dev.ID(), "claim", dev.Claim.String(), "deviceID", dev.DeviceID)
	}
	return nil
}

// claimStatusTimeout bounds the writes of a sandbox's claim status: they never hold up a DEL
// for long, whatever the API server does.
const claimStatusTimeout = 10 * time.Second

// reportClaims writes, on each claim that a device attachment of sb or of gone (attachments
// just removed) uses, the status entries of sb's attached devices of that claim: an attached
// device is reported, a removed one cleared. Failures are logged and posted as a Warning:
// the interfaces work either way, and Claims keeps and retries a write that may pass later.
func (m *Manager) reportClaims(ctx context.Context, sb *checkpoint.Sandbox, gone []checkpoint.Attachment) {
	if m.Claims == nil {
		return
	}
	type claimEntries struct {
		ref     claims.ClaimRef
		entries []resourcev1.AllocatedDeviceStatus
	}
	var order []string
	byClaim := map[string]*claimEntries{}
	use := func(r deviceRecord) *claimEntries {
		key := r.ClaimNamespace + "/" + r.Claim
		c, ok := byClaim[key]
		if !ok {
			c = &claimEntries{ref: r.claimRef()}
			byClaim[key] = c
			order = append(order, key)
		}
		return c
	}
	for i := range gone {
		if r, ok := recordedDevice(&gone[i]); ok {
			use(r)
		}
	}
	pod := podOf(sb).String()
	var errs []error
	for i := range sb.Attachments {
		a := &sb.Attachments[i]
		r, ok := recordedDevice(a)
		if !ok {
			continue
		}
		c := use(r)
		if a.State != checkpoint.Added {
			continue
		}
		st, err := deviceStatus(sb, a, r, pod)
		if err != nil {
			errs = append(errs, fmt.Errorf("claim %s, device %s/%s/%s: %w", c.ref, r.Driver, r.Pool, r.Device, err))
			continue
		}
		c.entries = append(c.entries, st)
	}
	if len(order) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimStatusTimeout)
	defer cancel()
	for _, key := range order {
		c := byClaim[key]
		if err := m.Claims.ApplyStatus(ctx, c.ref, c.entries); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("claim %s: write status.devices: %w", c.ref, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		err = fmt.Errorf("pod %s: %w", pod, err)
		m.Log.Error("claim status not written", "pod", pod, "containerID", sb.ContainerID, "err", err)
		if sb.PodName != "" {
			m.Events.Warning(podRef(podOf(sb)), status.ReasonClaimStatusFailed, err.Error())
		}
	}
}

// deviceStatus is the claim status entry of an attached device: what network-status says of
// the same attachment.
func deviceStatus(sb *checkpoint.Sandbox, a *checkpoint.Attachment, r deviceRecord, pod string) (resourcev1.AllocatedDeviceStatus, error) {
	res, err := create.CreateFromBytes(a.Result)
	if err != nil {
		return resourcev1.AllocatedDeviceStatus{}, fmt.Errorf("network %q result: %w", a.Network, err)
	}
	return claims.DeviceStatus(claims.Report{Device: r.device(), Pod: pod, Generation: r.Generation, Now: time.Now(),
		Network: status.Network{Name: a.Network, IfName: a.IfName, Result: res}})
}

// deviceAttachments are the attachments of sb that carry a device.
func deviceAttachments(sb *checkpoint.Sandbox) []checkpoint.Attachment {
	var out []checkpoint.Attachment
	for i := range sb.Attachments {
		if _, ok := recordedDevice(&sb.Attachments[i]); ok {
			out = append(out, sb.Attachments[i])
		}
	}
	return out
}

// deviceInfo is the network-status device-info of an attachment's device, if it has one.
func deviceInfo(a *checkpoint.Attachment) *nadv1.DeviceInfo {
	r, ok := recordedDevice(a)
	if !ok {
		return nil
	}
	return claims.DeviceInfo(r.device())
}

// refuseDevicePlug refuses to hot plug device-backed networks: a pod's claims are fixed when
// it is created, so no device can be allocated to a running pod.
func refuseDevicePlug(nets []plan.Network, idx []int) error {
	var names []string
	for _, i := range idx {
		if nets[i].ResourceName != "" && !slices.Contains(names, nets[i].Key) {
			names = append(names, nets[i].Key)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("network %q is device-backed (annotation %s): its device comes from the pod's ResourceClaims, which are fixed at pod creation, so it cannot be hot plugged; create the pod with it instead",
		names[0], ResourceNameAnnotation)
}
