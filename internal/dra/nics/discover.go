package nics

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/utils/ptr"
)

// Attribute names of a published device.
const (
	AttrIfName       resourceapi.QualifiedName = "ifName"
	AttrMAC          resourceapi.QualifiedName = "mac"
	AttrMTU          resourceapi.QualifiedName = "mtu"
	AttrSpeed        resourceapi.QualifiedName = "speed"
	AttrPCIAddress   resourceapi.QualifiedName = "pciAddress"
	AttrNUMANode     resourceapi.QualifiedName = "numaNode"
	AttrPCIBusID     resourceapi.QualifiedName = "resource.kubernetes.io/pciBusID"
	AttrResourceName resourceapi.QualifiedName = "k8s.cni.cncf.io/resourceName"
)

// maxAttributeValue is the longest string attribute value the API accepts.
const maxAttributeValue = resourceapi.DeviceAttributeMaxValueLength

// Link is what the kernel says of one host link.
type Link struct {
	Name         string
	MAC          string // colon-separated hex, empty for a link without one
	MTU          int
	DefaultRoute bool // a default route (IPv4 or IPv6) leaves through it
}

// NIC is one published link: the kernel's facts and what sysfs adds.
type NIC struct {
	Link
	PCIAddress string // domain:bus:device.function, empty when no PCI device is behind it
	NUMANode   *int64
	SpeedMbps  *int64
}

// Discover returns the links cfg selects, sorted by name, with what the sysfs tree rooted at
// sysfs ("/sys" on a node) tells of them. The loopback link and, unless cfg says otherwise,
// the links carrying a default route are never selected.
func Discover(cfg Config, links []Link, sysfs string) []NIC {
	cfg = cfg.WithDefaults()
	var nics []NIC
	for _, l := range links {
		if l.Name == "lo" || !cfg.selects(l.Name) || (l.DefaultRoute && *cfg.ExcludeDefaultRoute) {
			continue
		}
		nics = append(nics, describe(l, sysfs))
	}
	sort.Slice(nics, func(i, j int) bool { return nics[i].Name < nics[j].Name })
	return nics
}

var pciAddress = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// describe adds the PCI address, NUMA node and speed that sysfs shows for l.
func describe(l Link, sysfs string) NIC {
	n := NIC{Link: l}
	netDir := filepath.Join(sysfs, "class", "net", l.Name)
	n.SpeedMbps = readPositive(filepath.Join(netDir, "speed"))
	dev, err := filepath.EvalSymlinks(filepath.Join(netDir, "device"))
	if err != nil {
		return n // a virtual link: no device behind it
	}
	// The PCI function is the deepest PCI-named directory on the device's path (a virtio
	// NIC's device is virtioN under its PCI function).
	for d := dev; d != "." && d != string(filepath.Separator); d = filepath.Dir(d) {
		if pciAddress.MatchString(filepath.Base(d)) {
			n.PCIAddress = filepath.Base(d)
			dev = d
			break
		}
	}
	n.NUMANode = readNonNegative(filepath.Join(dev, "numa_node"))
	return n
}

// readPositive reads a decimal file; nil when it is absent, unreadable (the speed of a link
// that is down) or not above zero (-1 is "unknown").
func readPositive(path string) *int64 {
	v := readInt(path)
	if v == nil || *v <= 0 {
		return nil
	}
	return v
}

// readNonNegative is readPositive that keeps zero (NUMA node 0).
func readNonNegative(path string) *int64 {
	v := readInt(path)
	if v == nil || *v < 0 {
		return nil
	}
	return v
}

func readInt(path string) *int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return nil
	}
	return &v
}

// Device is the ResourceSlice device of n; resourceName is Config.ResourceName.
func (n NIC) Device(resourceName string) resourceapi.Device {
	attrs := map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
		AttrIfName: {StringValue: ptr.To(n.Name)},
		AttrMTU:    {IntValue: ptr.To(int64(n.MTU))},
	}
	if n.MAC != "" {
		attrs[AttrMAC] = resourceapi.DeviceAttribute{StringValue: ptr.To(n.MAC)}
	}
	if n.SpeedMbps != nil {
		attrs[AttrSpeed] = resourceapi.DeviceAttribute{IntValue: n.SpeedMbps}
	}
	if n.PCIAddress != "" {
		attrs[AttrPCIAddress] = resourceapi.DeviceAttribute{StringValue: ptr.To(n.PCIAddress)}
		attrs[AttrPCIBusID] = resourceapi.DeviceAttribute{StringValue: ptr.To(n.PCIAddress)}
	}
	if n.NUMANode != nil {
		attrs[AttrNUMANode] = resourceapi.DeviceAttribute{IntValue: n.NUMANode}
	}
	if resourceName != "" {
		attrs[AttrResourceName] = resourceapi.DeviceAttribute{StringValue: ptr.To(resourceName)}
	}
	return resourceapi.Device{Name: DeviceName(n.Name), Attributes: attrs}
}
