package claims

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/status"
)

// The conditions of an attached device's status, and their reasons.
const (
	ConditionReady        = "Ready"
	ConditionNetworkReady = "NetworkReady"

	ReasonAttached            = "Attached"            // Ready: the device is in the pod
	ReasonInterfaceConfigured = "InterfaceConfigured" // NetworkReady: its interface is configured
)

// maxIPs is the most addresses networkData.ips may hold (kube-apiserver's validation).
const maxIPs = 16

// Report is one attachment of a device, once its delegate succeeded.
type Report struct {
	Device     Device
	Pod        string         // "namespace/name"
	Network    status.Network // the attachment: NAD key, interface name, the delegate's result
	Generation int64          // the claim's metadata.generation, for observedGeneration
	Now        time.Time      // when the conditions became true
}

// DeviceStatus returns the claim status entry of the report's device, with the interface,
// addresses and MAC that network-status reports for the same attachment.
func DeviceStatus(r Report) (resourcev1.AllocatedDeviceStatus, error) {
	iface, err := status.InterfaceOf(r.Network)
	if err != nil {
		return resourcev1.AllocatedDeviceStatus{}, err
	}
	st := resourcev1.AllocatedDeviceStatus{
		Driver: r.Device.Driver, Pool: r.Device.Pool, Device: r.Device.Name,
		NetworkData: networkData(iface),
	}
	if r.Device.ShareID != nil {
		id := string(*r.Device.ShareID)
		st.ShareID = &id
	}
	now := metav1.NewTime(r.Now)
	where := fmt.Sprintf("%s of pod %s, network %s", iface.Name, r.Pod, r.Network.Name)
	st.Conditions = []metav1.Condition{
		{
			Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonAttached,
			Message: "attached as " + where, ObservedGeneration: r.Generation, LastTransitionTime: now,
		},
		{
			Type: ConditionNetworkReady, Status: metav1.ConditionTrue, Reason: ReasonInterfaceConfigured,
			Message: "configured: " + where, ObservedGeneration: r.Generation, LastTransitionTime: now,
		},
	}
	return st, nil
}

// networkData is the interface in the form the API accepts: canonical CIDRs without
// duplicates, at most maxIPs of them, and no field past its length limit.
func networkData(iface status.Interface) *resourcev1.NetworkDeviceData {
	nd := &resourcev1.NetworkDeviceData{}
	if len(iface.Name) <= resourcev1.NetworkDeviceDataInterfaceNameMaxLength {
		nd.InterfaceName = iface.Name
	}
	if len(iface.Mac) <= resourcev1.NetworkDeviceDataHardwareAddressMaxLength {
		nd.HardwareAddress = iface.Mac
	}
	seen := map[string]bool{}
	for _, ipn := range iface.IPs {
		cidr, ok := canonicalCIDR(ipn)
		if !ok || seen[cidr] || len(nd.IPs) == maxIPs {
			continue
		}
		seen[cidr] = true
		nd.IPs = append(nd.IPs, cidr)
	}
	return nd
}

// canonicalCIDR writes an interface address as kube-apiserver wants it: the address in its
// shortest form (IPv4 as such, IPv6 per RFC 5952) and the prefix length, "10.1.0.5/24".
func canonicalCIDR(n net.IPNet) (string, bool) {
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return "", false
	}
	addr = addr.Unmap().WithZone("")
	ones, bits := n.Mask.Size()
	switch {
	case addr.Is4() && bits == 8*net.IPv6len: // an IPv4 address with an IPv6 mask
		ones -= 8 * (net.IPv6len - net.IPv4len)
	case addr.Is4() && bits == 8*net.IPv4len, addr.Is6() && bits == 8*net.IPv6len:
	default: // no mask, not a prefix, or of the other family
		return "", false
	}
	p := netip.PrefixFrom(addr, ones)
	if !p.IsValid() {
		return "", false
	}
	return p.String(), true
}

// SetDeviceStatus returns devices with st in place of the entry of the same device (driver,
// pool, device, share ID), or added at the end. An entry replaced keeps what st does not
// say (its other conditions, its data) and, for a condition whose status did not change,
// the time it last changed.
func SetDeviceStatus(devices []resourcev1.AllocatedDeviceStatus, st resourcev1.AllocatedDeviceStatus) []resourcev1.AllocatedDeviceStatus {
	out := make([]resourcev1.AllocatedDeviceStatus, 0, len(devices)+1)
	found := false
	for _, d := range devices {
		if !sameDevice(d, st) {
			out = append(out, d)
			continue
		}
		found = true
		out = append(out, merged(d, st))
	}
	if !found {
		out = append(out, *st.DeepCopy())
	}
	return out
}

// merged is old updated with what st says.
func merged(old, st resourcev1.AllocatedDeviceStatus) resourcev1.AllocatedDeviceStatus {
	m := *old.DeepCopy()
	for _, c := range st.Conditions {
		meta.SetStatusCondition(&m.Conditions, c)
	}
	m.NetworkData = st.NetworkData.DeepCopy()
	if st.Data != nil {
		m.Data = st.Data.DeepCopy()
	}
	return m
}

// RemoveDeviceStatus returns devices without what DeviceStatus says about d: its
// conditions Ready and NetworkReady and its networkData. The entry goes when nothing else is
// left in it.
func RemoveDeviceStatus(devices []resourcev1.AllocatedDeviceStatus, d Device) []resourcev1.AllocatedDeviceStatus {
	key := resourcev1.AllocatedDeviceStatus{Driver: d.Driver, Pool: d.Pool, Device: d.Name}
	if d.ShareID != nil {
		id := string(*d.ShareID)
		key.ShareID = &id
	}
	out := make([]resourcev1.AllocatedDeviceStatus, 0, len(devices))
	for _, e := range devices {
		if !sameDevice(e, key) {
			out = append(out, e)
			continue
		}
		rest := *e.DeepCopy()
		meta.RemoveStatusCondition(&rest.Conditions, ConditionReady)
		meta.RemoveStatusCondition(&rest.Conditions, ConditionNetworkReady)
		rest.NetworkData = nil
		if len(rest.Conditions) > 0 || rest.Data != nil {
			out = append(out, rest)
		}
	}
	return out
}

// sameDevice compares the keys of two entries: driver, pool, device and share ID.
func sameDevice(a, b resourcev1.AllocatedDeviceStatus) bool {
	if a.Driver != b.Driver || a.Pool != b.Pool || a.Device != b.Device {
		return false
	}
	if a.ShareID == nil || b.ShareID == nil {
		return a.ShareID == b.ShareID
	}
	return *a.ShareID == *b.ShareID
}
