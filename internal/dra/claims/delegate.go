package claims

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// CapabilityDeviceID is the CNI capability of plugins that take their device by ID
// (runtimeConfig.deviceID), as SR-IOV and host-device do.
const CapabilityDeviceID = "deviceID"

// hostDeviceType is the plugin that moves a host interface into the pod.
const hostDeviceType = "host-device"

// hostDeviceSelectors are the host-device conf keys that pick the host's device; the first
// set wins in the plugin (device, then hwaddr, kernelpath, pciBusID), so the claim's device
// replaces them all.
var hostDeviceSelectors = []string{"device", "hwaddr", "kernelpath", "pciBusID"}

// DelegateInput is what the delegate of a device-backed attachment is given.
type DelegateInput struct {
	// ConfList is the conflist, its host-device plugins pointed at the device.
	ConfList []byte
	// CapabilityArgs is {"deviceID": d.DeviceID} when a plugin of the list declares the
	// capability (libcni hands it to those plugins as runtimeConfig), else nil.
	CapabilityArgs map[string]any
}

// errNoHostDevice: a host-device plugin without a device ID to take, nor a name or PCI
// address to find the device by.
var errNoHostDevice = errors.New("host-device: the device publishes neither ifName nor a PCI address")

// DelegateInputs returns the conflist and capability arguments of the delegate that attaches
// d. A plugin declaring the deviceID capability gets d.DeviceID as runtimeConfig.deviceID. A
// host-device plugin takes it the same way when it declares the capability and the ID is not
// a bare interface name (host-device reads a runtimeConfig.deviceID as a PCI or auxiliary
// device only); otherwise its conf gets "device": d.IfName, or "pciBusID": d.PCIAddress
// when no name is known, and loses the capability. Other keys and plugins are left as they
// were.
func DelegateInputs(d Device, confList []byte) (DelegateInput, error) {
	var list map[string]json.RawMessage
	if err := json.Unmarshal(confList, &list); err != nil {
		return DelegateInput{}, fmt.Errorf("conflist: %w", err)
	}
	var plugins []json.RawMessage
	if err := json.Unmarshal(list["plugins"], &plugins); err != nil || len(plugins) == 0 {
		return DelegateInput{}, errors.New(`conflist: no "plugins" list`)
	}
	declared, changed := false, false
	for i, raw := range plugins {
		out, caps, err := pluginInput(d, raw)
		if err != nil {
			return DelegateInput{}, fmt.Errorf("plugin %d: %w", i, err)
		}
		declared = declared || caps
		if out != nil {
			plugins[i], changed = out, true
		}
	}
	in := DelegateInput{ConfList: confList}
	if declared && d.DeviceID != "" {
		in.CapabilityArgs = map[string]any{CapabilityDeviceID: d.DeviceID}
	}
	if !changed {
		return in, nil
	}
	var err error
	if list["plugins"], err = json.Marshal(plugins); err != nil {
		return DelegateInput{}, fmt.Errorf("conflist: %w", err)
	}
	if in.ConfList, err = json.Marshal(list); err != nil {
		return DelegateInput{}, fmt.Errorf("conflist: %w", err)
	}
	return in, nil
}

// pluginInput returns the plugin's conf rewritten (nil when left as it is) and whether it
// declares the deviceID capability once rewritten.
func pluginInput(d Device, raw json.RawMessage) (json.RawMessage, bool, error) {
	var conf map[string]json.RawMessage
	if err := json.Unmarshal(raw, &conf); err != nil {
		return nil, false, fmt.Errorf("conf: %w", err)
	}
	var head struct {
		Type         string         `json:"type"`
		Capabilities map[string]any `json:"capabilities"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, false, fmt.Errorf("conf: %w", err)
	}
	declares := head.Capabilities[CapabilityDeviceID] == true
	if head.Type != hostDeviceType {
		return nil, declares, nil
	}
	byID := declares && d.DeviceID != "" && d.DeviceID != d.IfName
	if err := pointHostDevice(conf, d, byID); err != nil {
		return nil, false, err
	}
	out, err := json.Marshal(conf)
	return out, byID, err
}

// pointHostDevice points a host-device conf at d: through runtimeConfig.deviceID when byID,
// else by its interface name or PCI address in the conf, the capability removed.
func pointHostDevice(conf map[string]json.RawMessage, d Device, byID bool) error {
	for k := range conf {
		if isSelector(k) {
			delete(conf, k)
		}
	}
	if byID {
		return nil
	}
	key, value := "device", d.IfName
	if value == "" {
		key, value = "pciBusID", d.PCIAddress
	}
	if value == "" {
		return errNoHostDevice
	}
	conf[key], _ = json.Marshal(value)
	for k, raw := range conf {
		if !strings.EqualFold(k, "capabilities") {
			continue
		}
		var caps map[string]json.RawMessage
		if err := json.Unmarshal(raw, &caps); err != nil {
			return fmt.Errorf("capabilities: %w", err)
		}
		delete(caps, CapabilityDeviceID)
		conf[k], _ = json.Marshal(caps)
	}
	return nil
}

// isSelector reports whether a conf key is one of hostDeviceSelectors, as the plugin's JSON
// decoding matches keys: regardless of case.
func isSelector(key string) bool {
	for _, s := range hostDeviceSelectors {
		if strings.EqualFold(key, s) {
			return true
		}
	}
	return false
}
