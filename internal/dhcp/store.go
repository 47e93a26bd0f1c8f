package dhcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/multinet/multinet/internal/atomicfile"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// store keeps one JSON file per lease in dir, each written atomically (temporary file,
// fsync, rename, fsync of the directory), so a crash leaves the old lease or the new one.
type store struct{ dir string }

func openStore(dir string) (store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return store{}, fmt.Errorf("lease dir %s: %w", dir, err)
	}
	return store{dir: dir}, nil
}

func (s store) path(containerID, ifname string) string {
	return filepath.Join(s.dir, url.PathEscape(containerID)+"_"+url.PathEscape(ifname)+".json")
}

func (s store) save(l *Lease) error {
	data, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encode lease %s: %w", l.key(), err)
	}
	if err := atomicfile.Write(s.path(l.ContainerID, l.IfName), data, 0o600, true); err != nil {
		return fmt.Errorf("save lease %s: %w", l.key(), err)
	}
	return nil
}

func (s store) remove(containerID, ifname string) error {
	err := os.Remove(s.path(containerID, ifname))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forget lease %s: %w", key(containerID, ifname), err)
	}
	return nil
}

// load reads one lease; a missing one is (nil, nil).
func (s store) load(containerID, ifname string) (*Lease, error) {
	return s.read(s.path(containerID, ifname))
}

func (s store) read(path string) (*Lease, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lease %s: %w", path, err)
	}
	var l Lease
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("lease file %s: %w", path, err)
	}
	if err := l.decodeACK(); err != nil {
		return nil, err
	}
	return &l, nil
}

// all reads every lease; unreadable files are reported and skipped.
func (s store) all() ([]*Lease, []error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, []error{fmt.Errorf("lease dir %s: %w", s.dir, err)}
	}
	var out []*Lease
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		l, err := s.read(filepath.Join(s.dir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if l != nil {
			out = append(out, l)
		}
	}
	return out, errs
}
