package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/multinet/multinet/internal/atomicfile"
	"github.com/multinet/multinet/internal/ipam/pool"
)

// record is one address this node allocated (or holds for a StatefulSet pod after its DEL).
// The node's records are the truth for which addresses it uses; block objects follow them.
type record struct {
	Pool        string        `json:"pool"`
	Block       string        `json:"block"` // IPBlock name
	CIDR        string        `json:"cidr"`  // the block
	Addr        netip.Addr    `json:"addr"`
	Bits        int           `json:"bits"` // the range subnet's prefix length, for the result
	Network     string        `json:"network"`
	Pod         string        `json:"pod"` // namespace/name
	UID         string        `json:"uid,omitempty"`
	ContainerID string        `json:"containerID,omitempty"`
	IfName      string        `json:"ifname,omitempty"`
	Hold        time.Duration `json:"hold,omitempty"`     // a StatefulSet pod's: held this long after DEL
	HeldUntil   time.Time     `json:"heldUntil,omitzero"` // held, not in use: free after this
	Created     time.Time     `json:"created"`
}

func (r *record) held() bool { return !r.HeldUntil.IsZero() }

// owner is the key of the interface a record serves.
func (r *record) owner() string { return owner(r.ContainerID, r.IfName) }

func owner(containerID, ifname string) string { return containerID + "/" + ifname }

func (r *record) prefix() netip.Prefix { return netip.PrefixFrom(r.Addr, r.Bits) }

// store keeps one file per record, written atomically and fsynced: a crash leaves the record
// or its absence, never half of it.
type store struct {
	dir     string
	durable bool
}

func openStore(dir string, durable bool) (store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return store{}, fmt.Errorf("ipam record dir %s: %w", dir, err)
	}
	atomicfile.RemoveTemps(dir)
	return store{dir: dir, durable: durable}, nil
}

func (s store) path(poolID string, a netip.Addr) string {
	return filepath.Join(s.dir, pool.PoolLabel(poolID)+"_"+strings.ReplaceAll(a.String(), ":", "-")+".json")
}

func (s store) save(r *record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode ipam record %s: %w", r.Addr, err)
	}
	if err := atomicfile.Write(s.path(r.Pool, r.Addr), data, 0o600, s.durable); err != nil {
		return fmt.Errorf("save ipam record of %s (pod %s): %w", r.Addr, r.Pod, err)
	}
	return nil
}

func (s store) remove(r *record) error {
	p := s.path(r.Pool, r.Addr)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove ipam record %s: %w", p, err)
	}
	if s.durable {
		return atomicfile.SyncDir(s.dir)
	}
	return nil
}

// all reads every record; unreadable files are reported and left in place.
func (s store) all() ([]*record, []error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, []error{fmt.Errorf("ipam record dir %s: %w", s.dir, err)}
	}
	var out []*record
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(s.dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read ipam record %s: %w", p, err))
			continue
		}
		var r record
		if err := json.Unmarshal(data, &r); err != nil {
			errs = append(errs, fmt.Errorf("ipam record %s does not parse: %w", p, err))
			continue
		}
		if !r.Addr.IsValid() || r.Pool == "" {
			errs = append(errs, fmt.Errorf("ipam record %s has no address or pool", p))
			continue
		}
		out = append(out, &r)
	}
	return out, errs
}
