package claims

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestDelegateInputs(t *testing.T) {
	vf := Device{Driver: sriov, PCIAddress: "0000:3b:02.1", DeviceID: "0000:3b:02.1"}
	pciNIC := Device{Driver: dranet, IfName: "eth1", PCIAddress: "0000:00:04.0", DeviceID: "0000:00:04.0"}
	veth := Device{Driver: "nic.multinet.io", IfName: "dev5", DeviceID: "dev5"}
	pciOnly := Device{Driver: sriov, PCIAddress: "0000:00:07.0", DeviceID: "0000:00:07.0"}
	tests := []struct {
		name     string
		dev      Device
		conf     string
		wantConf string // "" when the conflist is passed on unchanged
		wantArgs map[string]any
	}{
		{"sriov declares deviceID: the PCI address as runtimeConfig", vf,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"sriov","capabilities":{"deviceID":true}},{"type":"tuning"}]}`,
			"", map[string]any{"deviceID": "0000:3b:02.1"}},
		{"no plugin declares it: nothing to pass", vf,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"macvlan","master":"eth0"}]}`,
			"", nil},
		{"a capability declared false is not declared", vf,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"sriov","capabilities":{"deviceID":false}}]}`,
			"", nil},
		{"host-device without the capability: its device in the conf", veth,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"host-device","ipam":{"type":"static"}}]}`,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"device":"dev5","ipam":{"type":"static"},"type":"host-device"}]}`, nil},
		{"host-device: the claim's device replaces the NAD's selectors", pciNIC,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"host-device","device":"eth9","hwaddr":"02:00:00:00:00:01","kernelpath":"/sys/devices/x","pciBusID":"0000:00:09.0"}]}`,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"device":"eth1","type":"host-device"}]}`, nil},
		{"host-device: selectors in any case, as the plugin reads them", veth,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"Type":"host-device","Device":"eth9","PCIBusID":"0000:00:09.0","Capabilities":{"deviceID":true}}]}`,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"Capabilities":{},"Type":"host-device","device":"dev5"}]}`, nil},
		{"host-device with only a PCI address: pciBusID", pciOnly,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"host-device"}]}`,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"pciBusID":"0000:00:07.0","type":"host-device"}]}`, nil},
		{"host-device declaring deviceID, PCI address known: by runtimeConfig", pciNIC,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"host-device","device":"eth9","capabilities":{"deviceID":true}}]}`,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"capabilities":{"deviceID":true},"type":"host-device"}]}`,
			map[string]any{"deviceID": "0000:00:04.0"}},
		{"host-device declaring deviceID, a name only: by name, the capability dropped", veth,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"host-device","capabilities":{"deviceID":true,"ips":true}}]}`,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"capabilities":{"ips":true},"device":"dev5","type":"host-device"}]}`, nil},
		{"a name only, another plugin declaring deviceID: it gets the name", veth,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"host-device","capabilities":{"deviceID":true}},{"type":"vendor-tuning","capabilities":{"deviceID":true}}]}`,
			`{"cniVersion":"1.0.0","name":"n","plugins":[{"capabilities":{},"device":"dev5","type":"host-device"},{"type":"vendor-tuning","capabilities":{"deviceID":true}}]}`,
			map[string]any{"deviceID": "dev5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := DelegateInputs(tt.dev, []byte(tt.conf))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.wantConf
			if want == "" {
				want = tt.conf
			}
			if !sameJSON(t, in.ConfList, want) {
				t.Errorf("conflist\n%s\nwant\n%s", in.ConfList, want)
			}
			if !reflect.DeepEqual(in.CapabilityArgs, tt.wantArgs) {
				t.Errorf("capability args %v, want %v", in.CapabilityArgs, tt.wantArgs)
			}
		})
	}
}

func sameJSON(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("conflist %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(a, b)
}

func TestDelegateInputsKeepsNumbersAndUnknownKeysAsWritten(t *testing.T) {
	conf := `{"cniVersion":"1.0.0","name":"n","x-big":123456789012345678901234567890,` +
		`"plugins":[{"type":"host-device","mtu":9000,"x-vendor":{"n":1.50}}]}`
	in, err := DelegateInputs(Device{IfName: "dev5"}, []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cniVersion":"1.0.0","name":"n","plugins":[{"device":"dev5","mtu":9000,"type":"host-device","x-vendor":{"n":1.50}}],"x-big":123456789012345678901234567890}`
	if string(in.ConfList) != want {
		t.Errorf("conflist\n%s\nwant\n%s", in.ConfList, want)
	}
}

func TestDelegateInputsRefusals(t *testing.T) {
	tests := []struct {
		name string
		dev  Device
		conf string
		want error
	}{
		{"host-device and a device with neither name nor PCI address", Device{DeviceID: "aux.1"},
			`{"plugins":[{"type":"host-device"}]}`, errNoHostDevice},
		{"not a conflist", Device{}, `{"type":"host-device"}`, nil},
		{"not JSON", Device{}, `{`, nil},
		{"a plugin that is not an object", Device{}, `{"plugins":[1]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DelegateInputs(tt.dev, []byte(tt.conf))
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}
