package claims

import (
	"strings"

	resourcev1 "k8s.io/api/resource/v1"
)

// Attribute names read from a device (see the package doc for the lookup rule).
const (
	// CNIDomain is the domain of the attributes Multus and multinet share.
	CNIDomain = "k8s.cni.cncf.io"
	// AttrResourceName holds the resourceName of the NADs a device serves.
	AttrResourceName resourcev1.QualifiedName = CNIDomain + "/resourceName"
	// AttrDeviceID holds the ID a delegate takes as runtimeConfig.deviceID.
	AttrDeviceID resourcev1.QualifiedName = CNIDomain + "/deviceID"
	// AttrPCIBusID is the standard attribute of a device's PCI address.
	AttrPCIBusID resourcev1.QualifiedName = "resource.kubernetes.io/pciBusID"

	// The identifiers read in the driver's domain, else in CNIDomain.
	idIfName     = "ifName"
	idPCIAddress = "pciAddress"
	idMAC        = "mac"
)

// lookup returns the attribute name of a device published by driver: under the key name
// itself, else under its bare identifier when the name's domain is the driver's name.
func lookup(attrs map[resourcev1.QualifiedName]resourcev1.DeviceAttribute, driver string, name resourcev1.QualifiedName) (resourcev1.DeviceAttribute, bool) {
	if a, ok := attrs[name]; ok {
		return a, true
	}
	domain, id, qualified := strings.Cut(string(name), "/")
	if !qualified || domain != driver {
		return resourcev1.DeviceAttribute{}, false
	}
	a, ok := attrs[resourcev1.QualifiedName(id)]
	return a, ok
}

// lookupString is lookup of a string attribute: "" when absent or of another type.
func lookupString(attrs map[resourcev1.QualifiedName]resourcev1.DeviceAttribute, driver string, name resourcev1.QualifiedName) string {
	a, ok := lookup(attrs, driver, name)
	if !ok || a.StringValue == nil {
		return ""
	}
	return *a.StringValue
}

// driverString reads the string attribute id in the driver's own domain, else in CNIDomain.
func driverString(attrs map[resourcev1.QualifiedName]resourcev1.DeviceAttribute, driver, id string) string {
	if v := lookupString(attrs, driver, resourcev1.QualifiedName(driver+"/"+id)); v != "" {
		return v
	}
	return lookupString(attrs, driver, resourcev1.QualifiedName(CNIDomain+"/"+id))
}

// qualified returns attrs with every name fully qualified: a bare name gets the driver's
// domain.
func qualified(attrs map[resourcev1.QualifiedName]resourcev1.DeviceAttribute, driver string) map[resourcev1.QualifiedName]resourcev1.DeviceAttribute {
	out := make(map[resourcev1.QualifiedName]resourcev1.DeviceAttribute, len(attrs))
	for name, a := range attrs {
		if !strings.Contains(string(name), "/") {
			name = resourcev1.QualifiedName(driver + "/" + string(name))
		}
		out[name] = *a.DeepCopy()
	}
	return out
}

// describe fills the fields of d read from the attributes of its slice entry.
func describe(d *Device, dev *resourcev1.Device) {
	attrs := dev.Attributes
	d.ResourceName = lookupString(attrs, d.Driver, AttrResourceName)
	d.IfName = driverString(attrs, d.Driver, idIfName)
	d.PCIAddress = driverString(attrs, d.Driver, idPCIAddress)
	if d.PCIAddress == "" {
		d.PCIAddress = lookupString(attrs, d.Driver, AttrPCIBusID)
	}
	d.MAC = driverString(attrs, d.Driver, idMAC)
	d.DeviceID = lookupString(attrs, d.Driver, AttrDeviceID)
	if d.DeviceID == "" {
		d.DeviceID = d.PCIAddress
	}
	if d.DeviceID == "" {
		d.DeviceID = d.IfName
	}
	d.Attributes = qualified(attrs, d.Driver)
}
