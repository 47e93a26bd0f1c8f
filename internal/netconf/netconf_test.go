package netconf

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

const (
	bridgeConf  = `{"cniVersion":"0.4.0","name":"br","type":"bridge","bridge":"br0","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}`
	macvlanList = `{"cniVersion":"1.0.0","name":"mv","plugins":[
		{"type":"macvlan","master":"eth0","ipam":{"type":"static"}},
		{"type":"tuning","sysctl":{"net.ipv4.conf.all.log_martians":"1"}}]}`
)

// wantList checks a parsed list and that its Bytes are a conflist libcni reads back the same.
func wantList(t *testing.T, list *libcni.NetworkConfigList, name, cniVersion string, types ...string) {
	t.Helper()
	if list.Name != name || list.CNIVersion != cniVersion {
		t.Errorf("list name %q version %q, want %q %q", list.Name, list.CNIVersion, name, cniVersion)
	}
	again, err := libcni.ConfListFromBytes(list.Bytes)
	if err != nil {
		t.Fatalf("list.Bytes is not a conflist: %v", err)
	}
	if again.Name != name || again.CNIVersion != cniVersion {
		t.Errorf("list.Bytes name %q version %q, want %q %q", again.Name, again.CNIVersion, name, cniVersion)
	}
	if len(list.Plugins) != len(types) || len(again.Plugins) != len(types) {
		t.Fatalf("%d plugins (%d in Bytes), want %v", len(list.Plugins), len(again.Plugins), types)
	}
	for i, want := range types {
		if got := list.Plugins[i].Network.Type; got != want {
			t.Errorf("plugin %d type %q, want %q", i+1, got, want)
		}
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name, config, wantName, wantVersion string
		wantTypes                           []string
	}{
		{"conf becomes a one-plugin list", bridgeConf, "br", "0.4.0", []string{"bridge"}},
		{"conflist", macvlanList, "mv", "1.0.0", []string{"macvlan", "tuning"}},
		{"conf without name takes the NAD's", `{"cniVersion":"0.3.1","type":"bridge"}`, "nad-name", "0.3.1", []string{"bridge"}},
		{"conflist without name takes the NAD's", `{"cniVersion":"0.3.1","plugins":[{"type":"bridge"}]}`, "nad-name", "0.3.1", []string{"bridge"}},
		{"empty name takes the NAD's", `{"name":"","type":"bridge"}`, "nad-name", DefaultCNIVersion, []string{"bridge"}},
		{"conf without cniVersion gets the default", `{"name":"n","type":"bridge"}`, "n", DefaultCNIVersion, []string{"bridge"}},
		{"conflist without cniVersion gets the default", `{"name":"n","plugins":[{"type":"bridge"}]}`, "n", DefaultCNIVersion, []string{"bridge"}},
		{"cniVersions picks the highest supported", `{"name":"n","cniVersions":["0.4.0","1.0.0"],"plugins":[{"type":"bridge"}]}`,
			"n", "1.0.0", []string{"bridge"}},
		{"whitespace around", "\n  " + bridgeConf + "\n", "br", "0.4.0", []string{"bridge"}},
		{"multinet-ipam with Whereabouts keys", `{"name":"w","type":"macvlan","ipam":{"type":"multinet-ipam","range":"10.1.0.0/16","range_start":"10.1.0.10","exclude":["10.1.0.64/26"],"kubernetes":{"kubeconfig":"/x"},"log_level":"debug"}}`,
			"w", DefaultCNIVersion, []string{"macvlan"}},
		{"dotted binary name", `{"name":"n","type":"my.plugin-v2"}`, "n", DefaultCNIVersion, []string{"my.plugin-v2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := Parse([]byte(tt.config), "nad-name")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			wantList(t, list, tt.wantName, tt.wantVersion, tt.wantTypes...)
		})
	}
}

func TestParseKeepsPluginFields(t *testing.T) {
	list, err := Parse([]byte(bridgeConf), "nad-name")
	if err != nil {
		t.Fatal(err)
	}
	var plugin map[string]any
	if err := json.Unmarshal(list.Plugins[0].Bytes, &plugin); err != nil {
		t.Fatal(err)
	}
	if plugin["bridge"] != "br0" || plugin["ipam"] == nil {
		t.Errorf("plugin bytes lost fields: %s", list.Plugins[0].Bytes)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, config, want string
	}{
		{"empty", "  ", "empty config"},
		{"bad JSON", `{"name":"n", "type" "bridge"}`, "invalid JSON at offset 21"},
		{"truncated JSON", `{"name":"n"`, "invalid JSON at offset"},
		{"a list", `[{"type":"bridge"}]`, "config must be a JSON object, not a JSON array"},
		{"a string", `"bridge"`, "config must be a JSON object, not a JSON string"},
		{"null", `null`, "config must be a JSON object"},
		{"missing type", `{"name":"n"}`, `missing "type"`},
		{"empty type", `{"name":"n","type":""}`, `missing "type"`},
		{"type not a string", `{"name":"n","type":7}`, `"type" must be a string`},
		{"name not a string", `{"name":7,"type":"bridge"}`, `"name" must be a string`},
		{"name with a slash", `{"name":"../../etc/cron.d/x","type":"bridge"}`, "must not contain a path separator"},
		{"bad cniVersion", `{"name":"n","cniVersion":"one","type":"bridge"}`, `cniVersion "one": not a version`},
		{"cniVersion not a string", `{"name":"n","cniVersion":1,"type":"bridge"}`, `"cniVersion" must be a string`},
		{"traversal type", `{"name":"n","type":"../x"}`, `type "../x": must be a plain binary name, not a path`},
		{"absolute type", `{"name":"n","type":"/usr/bin/x"}`, "not a path"},
		{"backslash type", `{"name":"n","type":"a\\b"}`, "not a path"},
		{"dotdot type", `{"name":"n","type":".."}`, `without ".."`},
		{"NUL type", `{"name":"n","type":"bridge\u0000"}`, "control characters"},
		{"space type", `{"name":"n","type":"bridge -x"}`, "whitespace"},
		{"traversal in list", `{"name":"n","plugins":[{"type":"bridge"},{"type":"../../bin/sh"}]}`,
			`plugin 2: type "../../bin/sh": must be a plain binary name`},
		{"traversal ipam type", `{"name":"n","type":"bridge","ipam":{"type":"../../usr/bin/x"}}`,
			`ipam: type "../../usr/bin/x": must be a plain binary name, not a path`},
		{"traversal ipam type in list", `{"name":"n","plugins":[{"type":"macvlan","ipam":{"type":"/bin/sh"}}]}`,
			`plugin 1: ipam: type "/bin/sh"`},
		{"empty ipam type", `{"name":"n","type":"bridge","ipam":{"type":""}}`, `ipam: type "": must not be empty`},
		{"ipam not an object", `{"name":"n","type":"bridge","ipam":"host-local"}`, `"ipam" must be a JSON object`},
		{"multinet-ipam section as ADD reads it", `{"name":"n","plugins":[{"type":"macvlan","ipam":{"type":"multinet-ipam","range":"10.1.0.0/16","exlude":["10.1.0.0/24"]}}]}`,
			`plugin 1: ipam (multinet-ipam): unknown key "exlude"`},
		{"multinet-ipam without a range", `{"name":"n","type":"bridge","ipam":{"type":"multinet-ipam"}}`, `ipam (multinet-ipam): no range`},
		{"type key in another case", `{"name":"n","plugins":[{"TYPE":"/bin/sh"}]}`, `plugin 1: missing "type"`},
		{"missing type in list", `{"name":"n","plugins":[{"type":"bridge"},{"master":"eth0"}]}`, `plugin 2: missing "type"`},
		{"plugin not an object", `{"name":"n","plugins":["bridge"]}`, "plugin 1: not a JSON object"},
		{"null plugin", `{"name":"n","plugins":[null]}`, "plugin 1: not a JSON object"},
		{"plugins not a list", `{"name":"n","plugins":{"type":"bridge"}}`, `"plugins" must be a list`},
		{"empty plugins", `{"name":"n","plugins":[]}`, `"plugins" is empty`},
		{"null plugins", `{"name":"n","plugins":null}`, `"plugins" is empty`},
		{"plugin field of wrong type", `{"name":"n","type":"bridge","dns":5}`, `invalid config: field "dns": a JSON number`},
		{"bad disableCheck", `{"name":"n","disableCheck":"maybe","plugins":[{"type":"bridge"}]}`, "disableCheck"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := Parse([]byte(tt.config), "nad-name")
			if err == nil {
				t.Fatalf("Parse accepted %s as %+v", tt.config, list)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseValidatesWhatLibcniDecoded(t *testing.T) {
	// encoding/json matches keys case-insensitively: whichever of "type" and
	// "Type" libcni ends up with is the binary that runs, so that is checked.
	for _, config := range []string{
		`{"name":"n","type":"bridge","Type":"/bin/sh"}`,
		`{"name":"n","plugins":[{"type":"bridge","tYPE":"/bin/sh"}]}`,
	} {
		list, err := Parse([]byte(config), "nad")
		if err != nil {
			continue
		}
		for _, p := range list.Plugins {
			if ValidateType(p.Network.Type) != nil {
				t.Errorf("Parse(%s) accepted type %q", config, p.Network.Type)
			}
		}
	}
	list := &libcni.NetworkConfigList{Name: "n", Plugins: []*libcni.PluginConfig{
		{Network: &types.PluginConf{Type: "bridge"}}, {Network: &types.PluginConf{Type: "/bin/sh"}}}}
	if err := validateList(list); err == nil || !strings.Contains(err.Error(), `plugin 2: type "/bin/sh"`) {
		t.Errorf("validateList error = %v", err)
	}
}

func TestParseWithoutNameOrFallback(t *testing.T) {
	_, err := Parse([]byte(`{"type":"bridge"}`), "")
	if err == nil || !strings.Contains(err.Error(), `missing "name"`) {
		t.Fatalf("error = %v, want missing name", err)
	}
}

func TestErrorsDoNotEchoSecrets(t *testing.T) {
	const secret = "s3cr3t-t0ken"
	configs := []string{
		`{"name":"n","type":"bridge","token":"` + secret + `",}`,
		`{"name":"n","token":"` + secret + `"}`,
		`{"name":"n","type":"bridge","dns":"` + secret + `"}`,
		`{"name":"n","plugins":[{"type":"x","token":"` + secret + `"},{"type":"/bin/sh"}]}`,
		`{"name":"n","type":"bridge","token":"` + secret + `"` + strings.Repeat(" ", 10) + `x}`,
	}
	for _, config := range configs {
		_, err := Parse([]byte(config), "nad")
		if err == nil {
			t.Fatalf("Parse accepted %s", config)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "s3c") {
			t.Errorf("error echoes the config: %v", err)
		}
	}
}

func TestValidateType(t *testing.T) {
	for _, ok := range []string{"bridge", "host-local", "macvlan", "my_plugin.v2", "a"} {
		if err := ValidateType(ok); err != nil {
			t.Errorf("ValidateType(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "x/..", "/usr/bin/x", "bin/x", `a\b`, "a..b", "a\x00", "a b", "a\tb", "\u00a0x", "a\x1b"} {
		err := ValidateType(bad)
		var terr *TypeError
		if !errors.As(err, &terr) || terr.Type != bad {
			t.Errorf("ValidateType(%q) = %v, want a *TypeError", bad, err)
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFromConfDir(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "00-broken.conf", `{"name":`)
	writeFile(t, dir, "10-bridge.conf", bridgeConf)
	writeFile(t, dir, "20-mv.conflist", macvlanList)
	writeFile(t, dir, "30-other.json", `{"name":"js","type":"ptp"}`)
	writeFile(t, dir, "40-mv-again.conflist", `{"name":"mv","plugins":[{"type":"ipvlan"}]}`)
	writeFile(t, dir, "50-ignored.txt", `{"name":"txt","type":"ptp"}`)
	writeFile(t, dir, "60-evil.conf", `{"name":"evil","type":"../../bin/sh"}`)
	if err := os.Mkdir(filepath.Join(dir, "70-dir.conf"), 0o700); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, network string
		wantTypes     []string
		wantErr       string
	}{
		{"conf", "br", []string{"bridge"}, ""},
		{"conflist, first file by name wins", "mv", []string{"macvlan", "tuning"}, ""},
		{"json", "js", []string{"ptp"}, ""},
		{"other extensions ignored", "txt", nil, `no CNI config with network name "txt" in ` + dir},
		{"unreadable files named", "nope", nil, "unreadable files skipped: 00-broken.conf"},
		{"types validated", "evil", nil, `60-evil.conf: type "../../bin/sh"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := FromConfDir(dir, tt.network)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantList(t, list, tt.network, list.CNIVersion, tt.wantTypes...)
		})
	}
}

func TestFromConfDirNotFoundIsTyped(t *testing.T) {
	dir := t.TempDir()
	_, err := FromConfDir(dir, "net")
	var nf *NotFoundError
	if !errors.As(err, &nf) || nf.Dir != dir || nf.Name != "net" {
		t.Fatalf("error = %v, want a *NotFoundError", err)
	}
	_, err = FromConfDir(filepath.Join(dir, "missing"), "net")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error = %v, want ErrNotExist", err)
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "10-file.conf", `{"name":"from-file","type":"ptp"}`)

	list, err := Resolve([]byte(`{"type":"bridge"}`), "nad", dir)
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, list, "nad", DefaultCNIVersion, "bridge")

	list, err = Resolve([]byte(" \n"), "from-file", dir)
	if err != nil {
		t.Fatal(err)
	}
	wantList(t, list, "from-file", DefaultCNIVersion, "ptp")

	_, err = Resolve(nil, "absent", dir)
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("error = %v, want a *NotFoundError", err)
	}
}
