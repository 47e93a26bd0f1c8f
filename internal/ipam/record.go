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

// unreadable is a record file that does not read: its address, known from the file's name,
// stays reserved (this node may have given it to a pod), and the file stays.
type unreadable struct {
	path  string
	label string // pool.PoolLabel of the record's pool
	addr  netip.Addr
	err   error
}

func (u unreadable) key() string { return u.label + "|" + u.addr.String() }

// all reads every record. Files that do not read are left in place: those whose name gives a
// pool and an address come back as unreadable, the others as errors.
func (s store) all() ([]*record, []unreadable, []error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, []error{fmt.Errorf("ipam record dir %s: %w", s.dir, err)}
	}
	var out []*record
	var bad []unreadable
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(s.dir, e.Name())
		r, err := readRecord(p)
		if err == nil {
			out = append(out, r)
			continue
		}
		label, addr, ok := nameOf(e.Name())
		if !ok {
			errs = append(errs, fmt.Errorf("%w (and its file name names no address)", err))
			continue
		}
		bad = append(bad, unreadable{path: p, label: label, addr: addr, err: err})
	}
	return out, bad, errs
}

func readRecord(p string) (*record, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read ipam record %s: %w", p, err)
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("ipam record %s does not parse: %w", p, err)
	}
	if !r.Addr.IsValid() || r.Pool == "" {
		return nil, fmt.Errorf("ipam record %s has no address or pool", p)
	}
	return &r, nil
}

// nameOf reads the pool label and the address of a record file's name (store.path).
func nameOf(name string) (label string, a netip.Addr, ok bool) {
	label, rest, ok := strings.Cut(strings.TrimSuffix(name, ".json"), "_")
	if !ok || label == "" {
		return "", netip.Addr{}, false
	}
	a, err := netip.ParseAddr(strings.ReplaceAll(rest, "-", ":"))
	return label, a, err == nil
}
