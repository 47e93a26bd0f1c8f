package dhcp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/multinet/multinet/internal/atomicfile"
)

// The address memory's bounds: how long an address is asked for again after its lease was
// given up, and how many are remembered at most (the oldest is dropped first).
const (
	recallHold = 24 * time.Hour
	recallMax  = 4096
)

// recall remembers, per pod (namespace and name, not UID: a pod recreated under the same name
// qualifies), network and interface, the address the pod's last lease had when it was given
// up. The pod's next sandbox asks for it in its DHCPDISCOVER (option 50), so a restarted pod
// keeps its address also when the runtime deletes the old sandbox, and its lease is released,
// before it adds the new one. The server decides: an address it gave to someone else meanwhile
// is not offered. Each address is a small file of its own in dir (written atomically, not
// synced: it is a hint, and a crash loses at most the last one), so a daemon restart keeps them.
type recall struct {
	dir string
	mu  sync.Mutex
	by  map[string]recalled
}

// recalled is one remembered address, as kept on disk.
type recalled struct {
	Pod     podRef    `json:"pod"`
	Network string    `json:"network"`
	IfName  string    `json:"ifName"`
	IP      net.IP    `json:"ip"`
	At      time.Time `json:"at"` // when the lease was given up
}

func (r recalled) key() string {
	return r.Pod.Namespace + "/" + r.Pod.Name + "/" + r.Network + "/" + r.IfName
}

// openRecall reads the addresses remembered in dir; expired and unreadable ones are removed.
func openRecall(dir string, now time.Time) (*recall, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("address memory %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("address memory %s: %w", dir, err)
	}
	r := &recall{dir: dir, by: map[string]recalled{}}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		var a recalled
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil {
			err = json.Unmarshal(data, &a)
		}
		if err != nil || a.IP.To4() == nil || now.Sub(a.At) > recallHold {
			_ = os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		r.by[a.key()] = a
	}
	r.prune(now)
	return r, nil
}

// path is the file of a remembered address: a hash of its key, which may be longer than a
// file name can be.
func (r *recall) path(a recalled) string {
	sum := sha256.Sum256([]byte(a.key()))
	return filepath.Join(r.dir, hex.EncodeToString(sum[:16])+".json")
}

// lookup is the address to ask for on the request's interface, or nil.
func (r *recall) lookup(req *request, now time.Time) net.IP {
	if req.pod.Name == "" {
		return nil // no pod: a container ID is never seen again
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.by[recalled{Pod: req.pod, Network: req.network, IfName: req.IfName}.key()]
	if !ok || now.Sub(a.At) > recallHold {
		return nil
	}
	return a.IP
}

// remember keeps the address of a lease given up at now.
func (r *recall) remember(l *Lease, now time.Time) error {
	if l.Pod.Name == "" || l.ack == nil {
		return nil
	}
	a := recalled{Pod: podRef{Namespace: l.Pod.Namespace, Name: l.Pod.Name}, Network: l.Network, IfName: l.IfName,
		IP: l.IP(), At: now}
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode address of %s: %w", a.key(), err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := atomicfile.Write(r.path(a), data, 0o600, false); err != nil {
		return fmt.Errorf("remember address of %s: %w", a.key(), err)
	}
	r.by[a.key()] = a
	r.prune(now)
	return nil
}

// prune drops what is older than the hold time, then the oldest beyond recallMax. The
// caller holds r.mu (or is the only user).
func (r *recall) prune(now time.Time) {
	for k, a := range r.by {
		if now.Sub(a.At) > recallHold {
			r.drop(k)
		}
	}
	for len(r.by) > recallMax {
		oldest := ""
		for k, a := range r.by {
			if oldest == "" || a.At.Before(r.by[oldest].At) {
				oldest = k
			}
		}
		r.drop(oldest)
	}
}

// drop forgets an address; a file that cannot be removed is dropped at the next start.
func (r *recall) drop(k string) {
	_ = os.Remove(r.path(r.by[k]))
	delete(r.by, k)
}
