package routes

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const seedVRF = `---
interface: 'net1'
vrf:
  dds:
    subnets:
      10.201.1.0/24:
        gw: 10.201.1.1
      10.201.2.0/24:
        gw: 10.201.2.1
`

// runApplyCmd runs `multinet-routes apply args...` inside pod with dir as working directory.
func runApplyCmd(t *testing.T, pod, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", pod, pluginBinary, "apply"}, args...)...)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run apply: %v", err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestApplyOneShotExitPaths(t *testing.T) {
	pod, _ := linkPod(t, "10.201.1.10/24")
	sh(t, pod, "ip", "link", "add", "bare0", "type", "veth", "peer", "name", "bare0p")
	sh(t, pod, "ip", "link", "set", "bare0", "up")
	empty, dir := t.TempDir(), t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", "interface: [net1\n")
	other := writeFile(t, dir, "other.yaml", "interface: net1\nsubnets:\n  192.168.0.0/16: {gw: 192.168.0.1}\n  172.16.0.0/12: {gw: 172.16.0.1}\n")
	missingIf := writeFile(t, dir, "net9.yaml", strings.Replace(seedVRF, "'net1'", "net9", 1))
	writeFile(t, dir, "multinet-routes.yaml", seedVRF)

	cases := []struct {
		name     string
		cwd      string
		args     []string
		code     int
		out, err string
	}{
		{"missing config", empty, nil, 1, "", "no config file: tried ./multinet-routes.yaml, /etc/multinet/routes.yaml"},
		{"malformed config", dir, []string{"--config", bad}, 1, "", "config " + bad + ":"},
		{"missing interface", dir, []string{"--config", missingIf}, 1, "", `interface "net9"`},
		{"interface without address", dir, []string{"--interface", "bare0", "--wait", "300ms"}, 1, "", `interface "bare0" has no address after 300ms`},
		{"nothing matches", dir, []string{"--config", other}, 0, "nothing to do", ""},
		{"dry-run", dir, []string{"--dry-run"}, 0, "would add 10.201.2.0/24 via 10.201.1.1 dev net1", ""},
		{"noop alias", dir, []string{"--noop"}, 0, "would add 10.201.2.0/24 via 10.201.1.1 dev net1", ""},
		{"success from ./multinet-routes.yaml", dir, nil, 0, "added 10.201.2.0/24 via 10.201.1.1 dev net1", ""},
		{"second run finds the route", dir, nil, 0, "present 10.201.2.0/24 via 10.201.1.1 dev net1", ""},
		{"dry-run after success", dir, []string{"--noop"}, 0, "present 10.201.2.0/24 via 10.201.1.1 dev net1", ""},
		{"bad flag", dir, []string{"--bogus"}, 2, "", "flag provided but not defined"},
	}
	if _, err := os.Stat("/etc/multinet/routes.yaml"); err == nil {
		cases = cases[1:] // the machine has a real config at the fallback path
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runApplyCmd(t, pod, tc.cwd, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.err) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					code, out, errOut, tc.code, tc.out, tc.err)
			}
			if tc.name == "dry-run" || tc.name == "noop alias" {
				if ours := routesOf(t, pod, "-4", "", "proto", "109"); ours != "" {
					t.Fatalf("dry run changed routes: %s", ours)
				}
			}
		})
	}
	if got := routesOf(t, pod, "-4", "", "proto", "109"); strings.Count(got, "\n") != 1 {
		t.Errorf("routes after the runs: %q, want exactly one", got)
	}
}

func TestMainWithoutApplyIsUsageError(t *testing.T) {
	var out, errOut strings.Builder
	if code := Main(t.Context(), []string{"bogus"}, &out, &errOut); code != ExitUsage || !strings.Contains(errOut.String(), "usage: multinet-routes apply") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}
