// Package checkpoint stores one durable record per pod sandbox: which networks were (or were
// about to be) attached, with the exact configuration used, so that DEL works from the record
// alone — without the pod, its NetworkAttachmentDefinitions or the API server. It stores and
// never decides: callers record intent before a delegate call and the result after it.
//
// Each record is a JSON file <dir>/<containerID>.json replaced atomically (temporary file,
// rename), so a crash at any instant leaves either the old or the new record. Every write,
// intent and progress alike, waits for the disk (fsync of the file and the directory) unless
// the node opted out (WithoutSync): a rename whose data never reached the disk can come back
// from a power loss as a torn record. A torn record is reported as a CorruptError holding
// what can still be read of it, and can be set aside for the operator (SetAside).
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/atomicfile"
)

// State is how far an attachment got.
type State string

const (
	// Adding means the delegate ADD was (or is about to be) called and may have left state.
	Adding State = "adding"
	// Added means the delegate ADD returned a result.
	Added State = "added"
)

// Attachment is one delegate invocation for a sandbox: enough to repeat it as DEL or CHECK.
type Attachment struct {
	Network        string            `json:"network"` // "namespace/name", or the default network's name
	Default        bool              `json:"default,omitempty"`
	IfName         string            `json:"ifName"`
	ConfList       json.RawMessage   `json:"confList"` // the conflist exactly as passed to the delegate
	Args           [][2]string       `json:"args,omitempty"`
	CapabilityArgs map[string]any    `json:"capabilityArgs,omitempty"`
	State          State             `json:"state"`
	Result         json.RawMessage   `json:"result,omitempty"`
	Meta           map[string]string `json:"meta,omitempty"` // e.g. the default-route gateway asked for
	// Selection is the pod's selection element this attachment was made for, as JSON: its
	// identity when the annotation is edited later (hot plug). Empty for the default network.
	Selection json.RawMessage `json:"selection,omitempty"`
	// AddError is the plugin's own error when its ADD failed: a DEL that fails with the very
	// same error is refusing the recorded config, not meeting a passing fault.
	AddError *types.Error `json:"addError,omitempty"`
}

// Sandbox is the record of one pod sandbox.
type Sandbox struct {
	ContainerID  string       `json:"containerID"`
	Netns        string       `json:"netns"`
	PodNamespace string       `json:"podNamespace"`
	PodName      string       `json:"podName"`
	PodUID       string       `json:"podUID"`
	Attachments  []Attachment `json:"attachments"`
}

// Find returns the index of the attachment on ifname, or -1.
func (s *Sandbox) Find(ifname string) int {
	for i := range s.Attachments {
		if s.Attachments[i].IfName == ifname {
			return i
		}
	}
	return -1
}

// ErrNotFound is returned by Load when a sandbox has no record.
var ErrNotFound = errors.New("no checkpoint record")

// ErrCorrupt is matched (errors.Is) by a CorruptError.
var ErrCorrupt = errors.New("checkpoint record is corrupt")

// CorruptError is Load's error for a record that is not valid JSON of a Sandbox (torn by a
// power loss, or damaged). Salvaged is what can still be read of it (see salvage); Raw is
// the record as read.
type CorruptError struct {
	ID, Path string
	Raw      []byte
	Salvaged *Sandbox
	Err      error // the decoder's
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("checkpoint %s is corrupt (%d bytes): %v", e.Path, len(e.Raw), e.Err)
}

func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// validID matches the container IDs the runtimes hand out; anything else could escape dir.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$`)

// Store keeps records in one directory, and an index of them by pod UID in memory.
type Store struct {
	dir    string
	noSync bool
	write  func(path string, data []byte, mode os.FileMode, durable bool) error // atomicfile.Write

	mu    sync.Mutex
	byPod map[string]map[string]bool // pod UID -> container IDs
	podOf map[string]string          // container ID -> pod UID
}

// Open creates dir if needed, removes temporary files a crash may have left and indexes the
// records by pod.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint dir %s: %w", dir, err)
	}
	atomicfile.RemoveTemps(dir)
	s := &Store{dir: dir, write: atomicfile.Write, byPod: map[string]map[string]bool{}, podOf: map[string]string{}}
	ids, err := s.List()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if sb, err := s.Load(id); err == nil {
			s.index(id, sb.PodUID)
		}
	}
	return s, nil
}

// index records that id belongs to the pod uid ("" for none: id is forgotten).
func (s *Store) index(id, uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.podOf[id]; ok {
		delete(s.byPod[old], id)
		if len(s.byPod[old]) == 0 {
			delete(s.byPod, old)
		}
		delete(s.podOf, id)
	}
	if uid == "" {
		return
	}
	if s.byPod[uid] == nil {
		s.byPod[uid] = map[string]bool{}
	}
	s.byPod[uid][id] = true
	s.podOf[id] = uid
}

// ByPod returns the container IDs of the records of the pod with that UID, sorted.
func (s *Store) ByPod(uid string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.byPod[uid]))
	for id := range s.byPod[uid] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// WithoutSync makes writes not wait for the disk: records then survive a daemon crash but not
// necessarily a power loss, after which one may be torn (CorruptError). For nodes that trade
// that for latency (--sync-checkpoints=false).
func (s *Store) WithoutSync() *Store { s.noSync = true; return s }

// Dir is where the records live.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(id string) (string, error) {
	if !validID.MatchString(id) || strings.Contains(id, "..") {
		return "", fmt.Errorf("invalid container ID %q", id)
	}
	return filepath.Join(s.dir, id+".json"), nil
}

// Load reads the record of a sandbox; ErrNotFound when there is none.
func (s *Store) Load(id string) (*Sandbox, error) {
	p, err := s.path(id)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", p, err)
	}
	var sb Sandbox
	if err := json.Unmarshal(data, &sb); err != nil {
		salvaged := salvage(data)
		salvaged.ContainerID = id
		return nil, &CorruptError{ID: id, Path: p, Raw: data, Salvaged: salvaged, Err: err}
	}
	return &sb, nil
}

// Save writes the record atomically and, unless WithoutSync, durably (fsync of the file and
// the directory): use it for intent, which must survive a power loss as well as a daemon
// crash.
func (s *Store) Save(sb *Sandbox) error { return s.save(sb, !s.noSync) }

// Update writes a record of progress (a result, a DEL's outcome) exactly as Save writes
// intent. Losing the progress itself would only repeat an idempotent DEL, but a rename not
// waited for can leave a torn record after a power loss, and that would cost the DEL.
func (s *Store) Update(sb *Sandbox) error { return s.save(sb, !s.noSync) }

func (s *Store) save(sb *Sandbox, durable bool) error {
	p, err := s.path(sb.ContainerID)
	if err != nil {
		return err
	}
	data, err := json.Marshal(sb)
	if err != nil {
		return fmt.Errorf("encode checkpoint for sandbox %s: %w", sb.ContainerID, err)
	}
	if err := s.write(p, data, 0o600, durable); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	s.index(sb.ContainerID, sb.PodUID)
	return nil
}

// Remove deletes the record; removing a missing record is not an error. It does not wait
// for the disk: a record that comes back after a power loss costs one idempotent DEL.
func (s *Store) Remove(id string) error {
	p, err := s.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove checkpoint %s: %w", p, err)
	}
	s.index(id, "")
	return nil
}

// CorruptDir is where SetAside moves corrupt records, under the store's directory.
const CorruptDir = "corrupt"

// SetAside keeps a copy of a corrupt record for the operator at <dir>/corrupt/<id>.json and
// returns that path. The record itself stays: the caller replaces it (Save) with what it
// salvaged, or removes it, so that a crash in between leaves the corrupt record in place to
// be handled again.
func (s *Store) SetAside(ce *CorruptError) (string, error) {
	if _, err := s.path(ce.ID); err != nil {
		return "", err
	}
	dir := filepath.Join(s.dir, CorruptDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("set aside checkpoint %s: %w", ce.Path, err)
	}
	p := filepath.Join(dir, ce.ID+".json")
	if err := s.write(p, ce.Raw, 0o600, !s.noSync); err != nil {
		return "", fmt.Errorf("set aside checkpoint %s: %w", ce.Path, err)
	}
	return p, nil
}

// Recent reports whether the record of id was written less than age ago.
func (s *Store) Recent(id string, age time.Duration) bool {
	p, err := s.path(id)
	if err != nil {
		return false
	}
	info, err := os.Stat(p)
	return err == nil && time.Since(info.ModTime()) < age
}

// List returns the container IDs that have a record, sorted.
func (s *Store) List() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints in %s: %w", s.dir, err)
	}
	var ids []string
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(name, ".json") && !strings.HasPrefix(name, ".") {
			ids = append(ids, strings.TrimSuffix(name, ".json"))
		}
	}
	sort.Strings(ids)
	return ids, nil
}
