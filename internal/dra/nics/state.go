package nics

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/multinet/multinet/internal/atomicfile"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
)

// stateFile is the name of the state file in the state directory.
const stateFile = "prepared.json"

// stateVersion is the format of the state file; a file of another version is refused.
const stateVersion = 1

// PreparedDevice is one device of a prepared claim.
type PreparedDevice struct {
	Requests []string `json:"requests"` // the request (or request/subrequest) it was allocated for
	Pool     string   `json:"pool"`
	// Device is the published device as it was at prepare time, so it stays published
	// while its link is inside a pod.
	Device resourceapi.Device `json:"device"`
}

// PreparedClaim is the record of one prepared claim.
type PreparedClaim struct {
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	Devices   []PreparedDevice `json:"devices"`
}

type stateOnDisk struct {
	Version int                         `json:"version"`
	Claims  map[types.UID]PreparedClaim `json:"claims"`
}

// State is the set of prepared claims, kept in a file in its directory. Each change is on
// disk (written to a temporary file, synced and renamed) before the call returns.
type State struct {
	mu     sync.Mutex
	path   string
	claims map[types.UID]PreparedClaim
}

// LoadState reads the state kept in dir, creating dir; a missing file is an empty state.
func LoadState(dir string) (*State, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nic driver state: %w", err)
	}
	atomicfile.RemoveTemps(dir)
	s := &State{path: filepath.Join(dir, stateFile), claims: map[types.UID]PreparedClaim{}}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nic driver state: %w", err)
	}
	var disk stateOnDisk
	if err := json.Unmarshal(data, &disk); err != nil {
		return nil, fmt.Errorf("nic driver state %s: %w", s.path, err)
	}
	if disk.Version != stateVersion {
		return nil, fmt.Errorf("nic driver state %s: version %d, want %d", s.path, disk.Version, stateVersion)
	}
	if disk.Claims != nil {
		s.claims = disk.Claims
	}
	return s, nil
}

// Get returns the record of the claim uid.
func (s *State) Get(uid types.UID) (PreparedClaim, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.claims[uid]
	return c, ok
}

// Put records the claim uid and writes the state.
func (s *State) Put(uid types.UID, c PreparedClaim) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.claims[uid]
	s.claims[uid] = c
	if err := s.save(); err != nil {
		if had {
			s.claims[uid] = old
		} else {
			delete(s.claims, uid)
		}
		return err
	}
	return nil
}

// Delete forgets the claim uid and writes the state; it tells whether the claim was
// recorded. Forgetting an unknown claim is no error.
func (s *State) Delete(uid types.UID) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.claims[uid]
	if !had {
		return false, nil
	}
	delete(s.claims, uid)
	if err := s.save(); err != nil {
		s.claims[uid] = old
		return true, err
	}
	return true, nil
}

// Holder returns the claim holding the device named device of pool, if one does.
func (s *State) Holder(pool, device string) (types.UID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for uid, c := range s.claims {
		for _, d := range c.Devices {
			if d.Pool == pool && d.Device.Name == device {
				return uid, true
			}
		}
	}
	return "", false
}

// Devices returns the recorded devices of pool, sorted by name.
func (s *State) Devices(pool string) []resourceapi.Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	var devs []resourceapi.Device
	for _, c := range s.claims {
		for _, d := range c.Devices {
			if d.Pool == pool {
				devs = append(devs, *d.Device.DeepCopy())
			}
		}
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i].Name < devs[j].Name })
	return devs
}

func (s *State) save() error {
	data, err := json.Marshal(stateOnDisk{Version: stateVersion, Claims: s.claims})
	if err != nil {
		return fmt.Errorf("nic driver state: %w", err)
	}
	if err := atomicfile.Write(s.path, data, 0o600, true); err != nil {
		return fmt.Errorf("nic driver state: %w", err)
	}
	return nil
}
