package testbed

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKubeletRefusesCgroupV1UnlessAllowed shows why kubeletConfig sets failCgroupV1: false:
// the field defaulted to false in Kubernetes 1.32 and defaults to true in 1.37, so the pinned
// kubelet given the same config without it refuses a cgroup v1 host while validating its
// config, before it touches the host.
func TestKubeletRefusesCgroupV1UnlessAllowed(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		t.Skip("the host runs cgroup v2: the kubelet's cgroup v1 check does not apply")
	}
	without := strings.Replace(kubeletConfig, "failCgroupV1: false\n", "", 1)
	if without == kubeletConfig {
		t.Fatal("kubeletConfig does not set failCgroupV1: false")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kubelet.yaml")
	data := expand(without, map[string]string{"root": dir, "nodeip": "127.0.0.1", "port": "10250",
		"clientca": filepath.Join(dir, "ca.crt")})
	if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(Tools(t, "kube"), "kubelet"), "--config="+cfg).CombinedOutput()
	const refusal = "kubelet is configured to not run on a host using cgroup v1"
	if err == nil || !strings.Contains(string(out), refusal) {
		t.Fatalf("kubelet without failCgroupV1: false: err %v, output:\n%s\nwant an exit with %q", err, out, refusal)
	}
}
