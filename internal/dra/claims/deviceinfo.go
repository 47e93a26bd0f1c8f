package claims

import (
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

// DeviceInfo returns the network-status device-info of d: type "pci" with its PCI address.
// A device without one gets none (nil): the specification's other types (vdpa, vhost-user,
// memif) describe devices that are not kernel interfaces, and a plain interface is already
// named by the status's "interface".
func DeviceInfo(d Device) *nadv1.DeviceInfo {
	if d.PCIAddress == "" {
		return nil
	}
	return &nadv1.DeviceInfo{
		Type:    nadv1.DeviceInfoTypePCI,
		Version: nadv1.DeviceInfoVersion,
		Pci:     &nadv1.PciDevice{PciAddress: d.PCIAddress},
	}
}
