package install

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestBinariesInstallsShimAndRoutesAtomically(t *testing.T) {
	src, bin := t.TempDir(), t.TempDir()
	for name, body := range map[string]string{"multinetd-shim": "shim v1", "multinet-routes": "routes v1"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A runtime may be executing the old shim: it must be replaced by rename, not rewritten.
	old := filepath.Join(bin, "multinet")
	if err := os.WriteFile(old, []byte("shim v0"), 0o755); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(old)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := Binaries(filepath.Join(src, "multinetd-shim"), bin); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"multinet": "shim v1", "multinet-routes": "routes v1"} {
		got, err := os.ReadFile(filepath.Join(bin, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
		if info, err := os.Stat(filepath.Join(bin, name)); err != nil || info.Mode().Perm() != 0o755 {
			t.Errorf("%s mode %v, %v", name, info.Mode(), err)
		}
	}
	buf := make([]byte, 16)
	n, _ := held.Read(buf)
	if string(buf[:n]) != "shim v0" {
		t.Errorf("the open old shim was overwritten in place: %q", buf[:n])
	}
	leftovers, _ := filepath.Glob(filepath.Join(bin, ".*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestConflistPointsAtSocketInTheDefaultNetworksVersion(t *testing.T) {
	dir := t.TempDir()
	path, err := Conflist(dir, "0.4.0", "/run/x.sock")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		CNIVersion string `json:"cniVersion"`
		Plugins    []struct {
			Type   string `json:"type"`
			Socket string `json:"socket"`
		} `json:"plugins"`
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != ConfName || conf.CNIVersion != "0.4.0" || len(conf.Plugins) != 1 ||
		conf.Plugins[0].Type != "multinet" || conf.Plugins[0].Socket != "/run/x.sock" {
		t.Fatalf("conflist %s: %s", path, data)
	}
}
