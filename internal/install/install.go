// Package install puts multinet on a node: the shim binary and multinet-routes, multinet-dhcp, multinet-ipam into the CNI
// bin dir (atomically: written beside, then renamed over, never copied onto a file a runtime
// may be executing) and multinet's own conflist into the CNI conf dir. The conflist is
// written once the daemon is ready and is left in place when the daemon stops, so kubelet
// never falls back to the cluster network alone while multinetd restarts.
package install

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/multinet/multinet/internal/atomicfile"
	"os"
	"path/filepath"
)

// ConfName is multinet's conflist file; "00-" sorts it before the cluster network's conf.
const ConfName = "00-multinet.conflist"

// Binaries installs the shim binary src as binDir/multinet, and multinet's own plugins found
// beside it (multinet-routes, multinet-dhcp, multinet-ipam) under their names, each unless an identical one is there.
func Binaries(src, binDir string) error {
	if err := install(src, filepath.Join(binDir, "multinet")); err != nil {
		return err
	}
	for _, name := range []string{"multinet-routes", "multinet-dhcp", "multinet-ipam"} {
		plugin := filepath.Join(filepath.Dir(src), name)
		if _, err := os.Stat(plugin); err != nil {
			continue
		}
		if err := install(plugin, filepath.Join(binDir, name)); err != nil {
			return err
		}
	}
	return nil
}

func install(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	return writeAtomic(dst, data, 0o755)
}

// Conflist writes multinet's conflist pointing the shim at socket, in the CNI version the
// cluster default network uses (so every runtime that runs the default network runs this).
func Conflist(confDir, cniVersion, socket string) (string, error) {
	if cniVersion == "" {
		cniVersion = "1.0.0"
	}
	conf := map[string]any{
		"cniVersion": cniVersion,
		"name":       "multinet",
		"plugins": []any{map[string]any{
			"type":         "multinet",
			"socket":       socket,
			"capabilities": map[string]bool{"portMappings": true, "bandwidth": true, "ips": true, "mac": true},
		}},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(confDir, ConfName)
	return path, writeAtomic(path, append(data, '\n'), 0o644)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("install %s: %w", path, err)
	}
	if err := atomicfile.Write(path, data, mode, true); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return nil
}
