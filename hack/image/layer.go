package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is the time of every file, the image's creation time and its history: the image of
// the same inputs is the same, byte for byte.
var epoch = time.Unix(0, 0).UTC()

// entry is one file, directory or symlink of the image's only layer.
type entry struct {
	path   string // absolute path inside the image, e.g. /usr/local/bin/multinetd
	mode   int64  // permission bits
	data   []byte // regular files
	target string // symlinks; data is ignored
	dir    bool   // a directory
}

// spec is what an image is made of: its files, and how a container of it starts.
type spec struct {
	entries    []entry
	entrypoint []string
	cmd        []string
	env        []string
}

// file reads a file of the build host into an entry.
func file(src, dst string, mode int64) (entry, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return entry{}, fmt.Errorf("reading %s: %w", src, err)
	}
	return entry{path: dst, mode: mode, data: data}, nil
}

// image builds the single-layer image of s on an empty base.
func image(s spec) (v1.Image, error) {
	data, err := layerTar(s.entries)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("making the layer: %w", err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "multinet hack/image"},
	})
	if err != nil {
		return nil, fmt.Errorf("appending the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint, cf.Config.Cmd, cf.Config.Env = s.entrypoint, s.cmd, s.env
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting the config: %w", err)
	}
	return img, nil
}

// layerTar writes entries as a tar, sorted by path, with every parent directory, owned by
// root, all times at epoch.
func layerTar(entries []entry) ([]byte, error) {
	all := withParents(entries)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range all {
		if err := tw.WriteHeader(header(e)); err != nil {
			return nil, fmt.Errorf("tar header of %s: %w", e.path, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("tar data of %s: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing the tar: %w", err)
	}
	return buf.Bytes(), nil
}

func header(e entry) *tar.Header {
	h := &tar.Header{
		Name: strings.TrimPrefix(e.path, "/"), Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX,
		Uname: "root", Gname: "root",
	}
	switch {
	case e.target != "":
		h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.target, 0o777
	case e.dir:
		h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
	default:
		h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
	}
	return h
}

// withParents returns entries plus a directory entry for every parent,
// sorted by path, so the tar is the same whatever order the entries were given in.
func withParents(entries []entry) []entry {
	seen := map[string]bool{}
	var all []entry
	for _, e := range entries {
		for dir := path.Dir(e.path); dir != "/" && !seen[dir]; dir = path.Dir(dir) {
			seen[dir] = true
			all = append(all, entry{path: dir, mode: 0o755, dir: true})
		}
		all = append(all, e)
	}
	slices.SortFunc(all, func(a, b entry) int { return strings.Compare(a.path, b.path) })
	return all
}
