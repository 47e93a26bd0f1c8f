package netconf

import (
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// FuzzNADConfig checks that Parse never panics and that every list it
// accepts has a safe name, only plain binary types, and Bytes that libcni
// reads back as the same list.
func FuzzNADConfig(f *testing.F) {
	for _, seed := range []string{
		bridgeConf, macvlanList, "", "null", "[]", `"x"`, "{", `{"type":"bridge"}`,
		`{"name":"n"}`, `{"name":"n","type":"../x"}`, `{"name":"n","type":"/usr/bin/x"}`,
		`{"name":"n","type":"a\\b"}`, `{"name":"n","type":"a\u0000"}`, `{"name":"../n","type":"x"}`,
		`{"name":"n","plugins":[{"type":"bridge"},{"type":"../../bin/sh"}]}`,
		`{"name":"n","plugins":[]}`, `{"name":"n","plugins":[null]}`, `{"name":"n","plugins":{}}`,
		`{"name":"n","cniVersion":"x","type":"bridge"}`, `{"name":"n","cniVersions":["1.0.0","9.9.9"],"plugins":[{"type":"b"}]}`,
		`{"name":"n","type":"bridge","Type":"/bin/sh"}`, `{"name":"n","type":"bridge","dns":5}`,
		`{"name":"n","disableCheck":"true","loadOnlyInlinedPlugins":true,"plugins":[{"type":"b"}]}`,
	} {
		f.Add([]byte(seed), "nad")
	}
	f.Add([]byte(`{"type":"bridge"}`), "")
	f.Add([]byte(`{"type":"bridge"}`), "a/b")
	f.Fuzz(func(t *testing.T, config []byte, fallbackName string) {
		list, err := Parse(config, fallbackName)
		if err != nil {
			return
		}
		if err := ValidateName(list.Name); err != nil {
			t.Fatalf("accepted an unsafe name: %v", err)
		}
		for i, p := range list.Plugins {
			if err := ValidateType(p.Network.Type); err != nil {
				t.Fatalf("accepted plugin %d with an unsafe type: %v", i+1, err)
			}
		}
		again, err := libcni.ConfListFromBytes(list.Bytes)
		if err != nil {
			t.Fatalf("accepted list's Bytes are not a conflist: %v", err)
		}
		if again.Name != list.Name || again.CNIVersion != list.CNIVersion || len(again.Plugins) != len(list.Plugins) {
			t.Fatalf("Bytes read back as %q %q with %d plugins, want %q %q with %d",
				again.Name, again.CNIVersion, len(again.Plugins), list.Name, list.CNIVersion, len(list.Plugins))
		}
		for i, p := range again.Plugins {
			if p.Network.Type != list.Plugins[i].Network.Type {
				t.Fatalf("Bytes plugin %d type %q, want %q", i+1, p.Network.Type, list.Plugins[i].Network.Type)
			}
		}
	})
}
