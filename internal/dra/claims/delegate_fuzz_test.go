package claims

import (
	"encoding/json"
	"testing"
)

// FuzzDelegateInputs feeds any conflist: DelegateInputs never panics, and what it accepts
// comes out as a conflist whose host-device plugins pick exactly the claim's device.
func FuzzDelegateInputs(f *testing.F) {
	f.Add(`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"host-device","device":"eth9"}]}`, "dev5", "", "dev5")
	f.Add(`{"plugins":[{"type":"host-device","capabilities":{"deviceID":true}},{"type":"sriov","capabilities":{"deviceID":true}}]}`, "", "0000:00:04.0", "0000:00:04.0")
	f.Add(`{"plugins":[{"type":"host-device","capabilities":{"deviceID":"yes"},"pciBusID":1}]}`, "eth1", "0000:00:04.0", "eth1")
	f.Add(`{"plugins":[{"type":"macvlan","master":"eth0"}],"x":1e400}`, "", "", "")
	f.Add(`{"plugins":[{"Type":"host-device","Device":"eth9","PCIBUSID":"x","Capabilities":{"deviceID":true}}]}`, "dev5", "", "dev5")
	f.Fuzz(func(t *testing.T, conf, ifName, pci, deviceID string) {
		d := Device{IfName: ifName, PCIAddress: pci, DeviceID: deviceID}
		in, err := DelegateInputs(d, []byte(conf))
		if err != nil {
			return
		}
		var list struct {
			Plugins []map[string]any `json:"plugins"`
		}
		if err := json.Unmarshal(in.ConfList, &list); err != nil {
			t.Fatalf("accepted %q, wrote %q: %v", conf, in.ConfList, err)
		}
		for _, p := range list.Plugins {
			if p["type"] != hostDeviceType {
				continue
			}
			set := 0
			for k := range p {
				if isSelector(k) {
					set++
				}
			}
			if set > 1 || set == 0 && in.CapabilityArgs == nil {
				t.Fatalf("host-device of %q picks its device %d ways, capability args %v: %q", conf, set, in.CapabilityArgs, in.ConfList)
			}
		}
	})
}
