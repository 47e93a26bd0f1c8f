package nics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/dynamic-resource-allocation/resourceslice"
)

// Driver answers the kubelet for one node's pool: it implements kubeletplugin.DRAPlugin.
type Driver struct {
	name  string // the DRA driver name
	pool  string // the node name
	state *State

	mu   sync.Mutex
	host map[string]resourceapi.Device // by device name, from the last scan

	// changed, when set, is told that the published devices may have changed.
	changed func()
	// fatal, when set, stops the driver on an error that retrying won't fix.
	fatal func(error)
}

var _ kubeletplugin.DRAPlugin = (*Driver)(nil)

// NewDriver returns the driver named name for the pool of node, keeping claims in state.
func NewDriver(name, node string, state *State) *Driver {
	return &Driver{name: name, pool: node, state: state, host: map[string]resourceapi.Device{}}
}

// SetHost replaces the devices found on the host; it reports whether they changed.
func (d *Driver) SetHost(devs []resourceapi.Device) bool {
	next := make(map[string]resourceapi.Device, len(devs))
	for _, dev := range devs {
		next[dev.Name] = dev
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if equalDevices(d.host, next) {
		return false
	}
	d.host = next
	return true
}

// Resources is what the node publishes: the host's devices and the prepared ones that left
// the host, in slices of at most ResourceSliceMaxDevices, sorted by name.
func (d *Driver) Resources() resourceslice.DriverResources {
	d.mu.Lock()
	all := make(map[string]resourceapi.Device, len(d.host))
	for name, dev := range d.host {
		all[name] = dev
	}
	d.mu.Unlock()
	for _, dev := range d.state.Devices(d.pool) {
		if _, onHost := all[dev.Name]; !onHost {
			all[dev.Name] = dev
		}
	}
	return resourceslice.DriverResources{Pools: map[string]resourceslice.Pool{d.pool: {Slices: slices(all)}}}
}

// PrepareResourceClaims records each claim's devices of this driver before answering; a
// claim prepared before gets its recorded answer. No CDI device is returned: the link is
// moved by the CNI delegate, not by the runtime.
func (d *Driver) PrepareResourceClaims(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	results := make(map[types.UID]kubeletplugin.PrepareResult, len(claims))
	for _, claim := range claims {
		results[claim.UID] = d.prepareClaim(ctx, claim)
	}
	return results, nil
}

func (d *Driver) prepareClaim(ctx context.Context, claim *resourceapi.ResourceClaim) kubeletplugin.PrepareResult {
	rec, ok := d.state.Get(claim.UID)
	if !ok {
		var err error
		if rec, err = d.recordFor(claim); err != nil {
			return kubeletplugin.PrepareResult{Err: err}
		}
		if err := d.state.Put(claim.UID, rec); err != nil {
			return kubeletplugin.PrepareResult{Err: fmt.Errorf("claim %s/%s: %w", claim.Namespace, claim.Name, err)}
		}
		slog.InfoContext(ctx, "nic claim prepared", "namespace", claim.Namespace, "claim", claim.Name, "uid", claim.UID, "devices", len(rec.Devices))
	}
	result := kubeletplugin.PrepareResult{Devices: []kubeletplugin.Device{}}
	for _, pd := range rec.Devices {
		result.Devices = append(result.Devices, kubeletplugin.Device{Requests: pd.Requests, PoolName: pd.Pool, DeviceName: pd.Device.Name})
	}
	return result
}

// recordFor picks the claim's results of this driver and checks that each names a device of
// this node that no other claim holds.
func (d *Driver) recordFor(claim *resourceapi.ResourceClaim) (PreparedClaim, error) {
	rec := PreparedClaim{Namespace: claim.Namespace, Name: claim.Name, Devices: []PreparedDevice{}}
	if claim.Status.Allocation == nil {
		return rec, fmt.Errorf("claim %s/%s: not allocated", claim.Namespace, claim.Name)
	}
	for _, r := range claim.Status.Allocation.Devices.Results {
		if r.Driver != d.name {
			continue
		}
		dev, err := d.claimable(claim.UID, r)
		if err != nil {
			return rec, fmt.Errorf("claim %s/%s: request %q: %w", claim.Namespace, claim.Name, r.Request, err)
		}
		rec.Devices = append(rec.Devices, PreparedDevice{Requests: []string{r.Request}, Pool: r.Pool, Device: dev})
	}
	return rec, nil
}

// ErrDeviceUnavailable is wrapped by the prepare error of a device that is not this node's,
// not on the host, held by another claim, or asked for with admin access.
var ErrDeviceUnavailable = errors.New("device unavailable")

func (d *Driver) claimable(uid types.UID, r resourceapi.DeviceRequestAllocationResult) (resourceapi.Device, error) {
	if r.AdminAccess != nil && *r.AdminAccess {
		// A NIC has one user: the pod it moves into. Watching it from a second pod is no use.
		return resourceapi.Device{}, fmt.Errorf("device %q: admin access to a NIC is not supported: %w", r.Device, ErrDeviceUnavailable)
	}
	if r.Pool != d.pool {
		return resourceapi.Device{}, fmt.Errorf("device %s/%s is not in this node's pool %q: %w", r.Pool, r.Device, d.pool, ErrDeviceUnavailable)
	}
	if holder, held := d.state.Holder(r.Pool, r.Device); held && holder != uid {
		return resourceapi.Device{}, fmt.Errorf("device %q is held by claim %s: %w", r.Device, holder, ErrDeviceUnavailable)
	}
	d.mu.Lock()
	dev, ok := d.host[r.Device]
	d.mu.Unlock()
	if !ok {
		return resourceapi.Device{}, fmt.Errorf("device %q is not on the host: %w", r.Device, ErrDeviceUnavailable)
	}
	return *dev.DeepCopy(), nil
}

// UnprepareResourceClaims forgets each claim; a claim never prepared is no error.
func (d *Driver) UnprepareResourceClaims(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	results := make(map[types.UID]error, len(claims))
	for _, c := range claims {
		had, err := d.state.Delete(c.UID)
		results[c.UID] = err
		if err != nil {
			results[c.UID] = fmt.Errorf("claim %s: %w", c.NamespacedName, err)
		}
		if had && err == nil {
			slog.InfoContext(ctx, "nic claim unprepared", "namespace", c.Namespace, "claim", c.Name, "uid", c.UID)
		}
	}
	if d.changed != nil {
		d.changed() // a device that left with the claim may not be back on the host
	}
	return results, nil
}

// HandleError logs a background error of the helper (publishing, gRPC serving) and stops the
// driver when the error is fatal.
func (d *Driver) HandleError(ctx context.Context, err error, msg string) {
	if errors.Is(err, kubeletplugin.ErrRecoverable) || d.fatal == nil {
		slog.WarnContext(ctx, "nic driver: "+msg, "driver", d.name, "err", err)
		return
	}
	d.fatal(fmt.Errorf("%s: %w", msg, err))
}

// WatchHealthStatus tells the kubelet that the driver reports no device health.
func (d *Driver) WatchHealthStatus(context.Context, chan<- kubeletplugin.DeviceHealthReport) error {
	return kubeletplugin.ErrHealthNotSupported
}
