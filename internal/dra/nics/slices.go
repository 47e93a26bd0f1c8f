package nics

import (
	"reflect"
	"sort"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/resourceslice"
)

// slices splits devs, sorted by name, into slices of at most ResourceSliceMaxDevices.
func slices(devs map[string]resourceapi.Device) []resourceslice.Slice {
	names := make([]string, 0, len(devs))
	for name := range devs {
		names = append(names, name)
	}
	sort.Strings(names)
	out := []resourceslice.Slice{}
	for i, name := range names {
		if i%resourceapi.ResourceSliceMaxDevices == 0 {
			out = append(out, resourceslice.Slice{Devices: []resourceapi.Device{}})
		}
		last := &out[len(out)-1]
		last.Devices = append(last.Devices, devs[name])
	}
	if len(out) == 0 {
		out = append(out, resourceslice.Slice{Devices: []resourceapi.Device{}})
	}
	return out
}

// equalDevices tells whether two scans found the same devices with the same attributes.
func equalDevices(a, b map[string]resourceapi.Device) bool {
	return reflect.DeepEqual(a, b)
}
