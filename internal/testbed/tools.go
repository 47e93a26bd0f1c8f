package testbed

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var toolDirs = struct {
	sync.Mutex
	byGroup map[string]string
}{byGroup: map[string]string{}}

// Tools returns the cache directory holding the binaries of a tool group ("kube": etcd and
// kube-apiserver; "cni": the reference CNI plugins), building what is missing with
// hack/tools.sh. It fails the test with the build output when the build fails. The answer is
// cached for the life of the process; concurrent test processes build one at a time.
func Tools(t testing.TB, group string) string {
	t.Helper()
	toolDirs.Lock()
	defer toolDirs.Unlock()
	if dir, ok := toolDirs.byGroup[group]; ok {
		return dir
	}
	dir, err := buildTools(group)
	if err != nil {
		t.Fatalf("testbed: tools %q: %v", group, err)
	}
	toolDirs.byGroup[group] = dir
	return dir
}

// buildTools runs hack/tools.sh for one group and returns the directory it prints on its
// last line. hack/tools.sh holds a file lock shared by every process on the machine
// (~/.cache/multinet/tools.lock) while it builds, so test binaries that go test runs in
// parallel never build the same tool at the same time.
func buildTools(group string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}

	var out bytes.Buffer
	cmd := exec.Command(filepath.Join(root, "hack", "tools.sh"), group)
	cmd.Dir = root
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/tools.sh %s: %w\n%s", group, err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return "", fmt.Errorf("hack/tools.sh %s: last line %q is not a directory\n%s", group, dir, out.String())
	}
	return dir, nil
}

// moduleRoot finds the directory holding hack/tools.sh: first from this source file's path
// (absent under -trimpath), then by walking up from the working directory.
func moduleRoot() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for {
			if _, err := os.Stat(filepath.Join(dir, "hack", "tools.sh")); err == nil {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("hack/tools.sh not found above the source file or the working directory")
}

// RequireRoot fails the test when it does not run as root. Tests that create network
// namespaces or links call it first: they are meant to run as root in CI, and a skip there
// would pass silently.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("testbed: %s needs root (network namespaces and links); run it as root, e.g. sudo -E go test", t.Name())
	}
}
