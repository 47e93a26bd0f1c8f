package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// staticBinary builds the pause program, a static binary, for use as any binary.
func staticBinary(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pause")
	cmd := exec.Command("go", "build", "-o", out, "./pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./pause: %v\n%s", err, b)
	}
	return out
}

// binDir makes a bin/ holding the given names, all copies of bin, with the given mtime.
func binDir(t *testing.T, bin string, mtime time.Time, names ...string) string {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, data, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestMultinetImageIsReproducible builds the multinet image twice from the same binaries
// with other mtimes, permissions and directory order: the tarballs are the same bytes, and
// the image holds the binaries where the DaemonSet expects them, sorted, owned by root.
func TestMultinetImageIsReproducible(t *testing.T) {
	bin := staticBinary(t)
	names := []string{"multinetd", "multinet", "multinet-routes", "multinet-webhook", "multinet-dhcp"}
	first := filepath.Join(t.TempDir(), "a.tar")
	second := filepath.Join(t.TempDir(), "b.tar")
	if err := run([]string{"multinet", "-bin", binDir(t, bin, time.Now(), names...), "-o", first}); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(names)
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := run([]string{"multinet", "-bin", binDir(t, bin, old, names...), "-o", second}); err != nil {
		t.Fatal(err)
	}
	a, b := readFile(t, first), readFile(t, second)
	if !bytes.Equal(a, b) {
		t.Fatalf("two builds of the same binaries differ (%d and %d bytes)", len(a), len(b))
	}
	files := layerFiles(t, first)
	want := []string{"usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/multinet",
		"usr/local/bin/multinet-dhcp", "usr/local/bin/multinet-routes", "usr/local/bin/multinet-webhook", "usr/local/bin/multinetd"}
	if !slices.Equal(files, want) {
		t.Errorf("layer files %q, want %q", files, want)
	}
	checkConfig(t, first, "/usr/local/bin/multinetd")
}

// TestMultinetImageWithoutDHCP takes multinet-dhcp only when it was built, and refuses a
// missing required binary or a dynamically linked one.
func TestMultinetImageWithoutDHCP(t *testing.T) {
	bin := staticBinary(t)
	out := filepath.Join(t.TempDir(), "m.tar")
	dir := binDir(t, bin, time.Now(), "multinetd", "multinet", "multinet-routes", "multinet-webhook")
	if err := run([]string{"multinet", "-bin", dir, "-o", out}); err != nil {
		t.Fatal(err)
	}
	if files := layerFiles(t, out); slices.Contains(files, "usr/local/bin/multinet-dhcp") {
		t.Errorf("multinet-dhcp in the image though it was not built: %q", files)
	}
	if err := os.Remove(filepath.Join(dir, "multinet-routes")); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"multinet", "-bin", dir, "-o", out}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("without multinet-routes: error %v, want one that it does not exist", err)
	}
	err := run([]string{"pause", "-pause", "/bin/sh", "-o", out})
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("a dynamic binary: error %v, want one that it is dynamically linked", err)
	}
}

// TestPauseImage puts the pause binary at /pause and starts it.
func TestPauseImage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "p.tar")
	if err := run([]string{"pause", "-pause", staticBinary(t), "-o", out}); err != nil {
		t.Fatal(err)
	}
	if files := layerFiles(t, out); !slices.Equal(files, []string{"pause"}) {
		t.Errorf("layer files %q, want [pause]", files)
	}
	checkConfig(t, out, "/pause")
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// layerFiles lists the entries of the image's only layer, checking their owner and time.
func layerFiles(t *testing.T, path string) []string {
	t.Helper()
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatalf("reading %s back: %v", path, err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(epoch) {
			t.Errorf("%s: uid %d gid %d mtime %s; want root and the epoch", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		names = append(names, h.Name)
	}
}

// checkConfig checks the image's platform, entrypoint and creation time.
func checkConfig(t *testing.T, path, entrypoint string) {
	t.Helper()
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Equal(epoch) {
		t.Errorf("config os %q arch %q created %s", cf.OS, cf.Architecture, cf.Created)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{entrypoint}) {
		t.Errorf("entrypoint %q, want [%s]", cf.Config.Entrypoint, entrypoint)
	}
}
