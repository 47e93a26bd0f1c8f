package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// goBuild builds Go packages of this module, static (the images have no libc), into dir,
// with extra -ldflags when ldflags is set.
func goBuild(dir, ldflags string, pkgs ...string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-trimpath", "-o", dir + "/"}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %v: %w\n%s", pkgs, err, out)
	}
	return nil
}

// buildImage runs hack/image (built into c.logDir) with args.
func (c *Cluster) buildImage(args ...string) error {
	tool := filepath.Join(c.logDir, "image")
	if _, err := os.Stat(tool); err != nil {
		if err := goBuild(c.logDir, "", "./hack/image", "./hack/image/pause"); err != nil {
			return err
		}
	}
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("hack/image %v: %w\n%s", args, err, out)
	}
	return nil
}

// importBaseImages builds the pause and busybox images and imports them.
func (c *Cluster) importBaseImages(t testing.TB) error {
	pause := filepath.Join(c.logDir, "pause.tar")
	if err := c.buildImage("pause", "-pause", filepath.Join(c.logDir, "pause"), "-o", pause, "-name", PauseImage); err != nil {
		return err
	}
	busybox := filepath.Join(c.logDir, "busybox.tar")
	if err := c.buildImage("busybox", "-busybox", "/bin/busybox", "-o", busybox, "-name", BusyboxImage); err != nil {
		return err
	}
	for _, img := range []string{pause, busybox} {
		if err := c.ImportImage(t.Context(), img); err != nil {
			return err
		}
	}
	return nil
}

// BuildMultinetImage builds multinet's binaries (static) and the multinet image named ref,
// and imports it into the node's containerd.
func (c *Cluster) BuildMultinetImage(t testing.TB, ref string) {
	t.Helper()
	bin := filepath.Join(c.logDir, "multinet-bin")
	if err := goBuild(bin, c.buildLdflags, "./cmd/..."); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	out := filepath.Join(c.logDir, "multinet.tar")
	if err := c.buildImage("multinet", "-bin", bin, "-o", out, "-name", ref); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	if err := c.ImportImage(t.Context(), out); err != nil {
		t.Fatalf("testbed: %v", err)
	}
}
