// Command image builds the test bed's container images without Docker, as docker-archive
// tarballs for `ctr -n k8s.io images import --snapshotter native FILE`. Each is one layer on
// an empty base, reproducible: the same inputs give the same bytes (files sorted, owned by
// root, every time at the Unix epoch).
//
//	image multinet -bin DIR -o FILE [-name REF]   multinetd, the shim and the plugins found in DIR
//	image pause -pause BIN -o FILE [-name REF]    the sandbox ("pause") image
//	image busybox -busybox BIN -o FILE [-name REF] Debian's static busybox with its applets
//
// Every binary must be static: the images have no libc.
package main

import (
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Default names of the images, as pods and the containerd config refer to them.
const (
	MultinetRef = "localhost/multinet/multinet:testbed"
	PauseRef    = "localhost/multinet/pause:testbed"
	BusyboxRef  = "localhost/multinet/busybox:testbed"
)

// multinetBinaries are the programs the multinet image holds, in /usr/local/bin; the first
// ones are required (multinet-webhook is deploy/webhook's Deployment's), multinet-dhcp and
// multinet-ipam are taken when they were built.
var (
	multinetRequired = []string{"multinetd", "multinet", "multinet-routes", "multinet-webhook"}
	multinetOptional = []string{"multinet-dhcp", "multinet-ipam"}
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: image multinet|pause|busybox [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	out := fs.String("o", "", "output docker-archive tarball")
	ref := fs.String("name", "", "image name (default: the test bed's name for this image)")
	bin := fs.String("bin", "bin", "multinet: directory of the built binaries")
	pause := fs.String("pause", "", "pause: the pause binary")
	busybox := fs.String("busybox", "/bin/busybox", "busybox: the static busybox binary")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-o FILE is required")
	}
	var (
		s   spec
		err error
	)
	switch args[0] {
	case "multinet":
		s, err = multinetSpec(*bin)
		setDefault(ref, MultinetRef)
	case "pause":
		s, err = pauseSpec(*pause)
		setDefault(ref, PauseRef)
	case "busybox":
		s, err = busyboxSpec(*busybox)
		setDefault(ref, BusyboxRef)
	default:
		return fmt.Errorf("unknown image %q: want multinet, pause or busybox", args[0])
	}
	if err != nil {
		return err
	}
	return write(s, *ref, *out)
}

func setDefault(ref *string, def string) {
	if *ref == "" {
		*ref = def
	}
}

// write builds the image and writes it to out atomically.
func write(s spec, ref, out string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	img, err := image(s)
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return os.Rename(tmp, out)
}

// multinetSpec: the binaries in /usr/local/bin; multinetd is started by the DaemonSet's
// command, which names it.
func multinetSpec(bin string) (spec, error) {
	var s spec
	for _, n := range append(append([]string{}, multinetRequired...), multinetOptional...) {
		src := filepath.Join(bin, n)
		if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) && !slices.Contains(multinetRequired, n) {
			continue
		}
		e, err := staticFile(src, "/usr/local/bin/"+n)
		if err != nil {
			return spec{}, err
		}
		s.entries = append(s.entries, e)
	}
	s.entrypoint = []string{"/usr/local/bin/multinetd"}
	s.env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	return s, nil
}

// pauseSpec: the pause binary as /pause.
func pauseSpec(bin string) (spec, error) {
	if bin == "" {
		return spec{}, errors.New("-pause BIN is required")
	}
	e, err := staticFile(bin, "/pause")
	if err != nil {
		return spec{}, err
	}
	return spec{entries: []entry{e}, entrypoint: []string{"/pause"}}, nil
}

// busyboxSpec: /bin/busybox, a symlink per applet in /bin, root in /etc/passwd and
// /etc/group, an empty /tmp; `sh` by default.
func busyboxSpec(bin string) (spec, error) {
	e, err := staticFile(bin, "/bin/busybox")
	if err != nil {
		return spec{}, err
	}
	listing, err := exec.Command(bin, "--list").Output()
	if err != nil {
		return spec{}, fmt.Errorf("%s --list: %w", bin, err)
	}
	s := spec{entries: []entry{e}, cmd: []string{"sh"}, env: []string{"PATH=/bin"}}
	for _, applet := range strings.Fields(string(listing)) {
		if applet != "busybox" {
			s.entries = append(s.entries, entry{path: "/bin/" + applet, target: "busybox"})
		}
	}
	s.entries = append(s.entries,
		entry{path: "/etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		entry{path: "/etc/group", mode: 0o644, data: []byte("root:x:0:\nnogroup:x:65534:\n")},
		entry{path: "/tmp", mode: 0o1777, dir: true},
		entry{path: "/root", mode: 0o700, dir: true},
	)
	return s, nil
}

// staticFile reads an executable that must be a static ELF (no program interpreter).
func staticFile(src, dst string) (entry, error) {
	f, err := elf.Open(src)
	if err != nil {
		return entry{}, fmt.Errorf("%s: %w", src, err)
	}
	defer func() { _ = f.Close() }() // read only
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return entry{}, fmt.Errorf("%s is dynamically linked: the image has no libc (build it with CGO_ENABLED=0)", src)
		}
	}
	return file(src, dst, 0o755)
}
