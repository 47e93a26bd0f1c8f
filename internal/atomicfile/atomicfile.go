// Package atomicfile replaces files atomically: the data is written to a temporary file in
// the same directory and renamed over the target, so a reader (or a crash) sees the old
// content or the new, never a mix, and a program executing the old file keeps running it.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// TempPattern matches the temporary files Write creates (and a crash may leave behind).
const TempPattern = ".*.tmp"

// Write replaces path with data and mode. durable also waits for the disk (fsync of the
// file and the directory), so the new content survives a power loss.
func Write(path string, data []byte, mode os.FileMode, durable bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	_, werr := tmp.Write(data)
	var serr error
	if durable {
		serr = tmp.Sync()
	}
	if err := errors.Join(werr, serr, tmp.Chmod(mode), tmp.Close()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !durable {
		return nil
	}
	return SyncDir(dir)
}

// SyncDir waits until dir's entries (a rename, a new file) are on disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// RemoveTemps deletes the temporary files a crash during Write left in dir.
func RemoveTemps(dir string) {
	tmps, _ := filepath.Glob(filepath.Join(dir, TempPattern))
	for _, t := range tmps {
		_ = os.Remove(t)
	}
}
