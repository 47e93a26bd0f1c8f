package attach

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/multinet/multinet/internal/netconf"
	"github.com/multinet/multinet/internal/plan"
	"github.com/multinet/multinet/internal/podinfo"
	"github.com/multinet/multinet/internal/selection"
)

// ShimType is the plugin type of multinet's own conflist; auto-detection skips any conf using it.
const ShimType = "multinet"

// ClusterDefault returns the node's cluster default network: the configured one, else the
// first conf file in the conf dir (in lexical order) that is not multinet's own.
func (m *Manager) ClusterDefault() (plan.Network, error) {
	if d := m.cfg.DefaultNetwork; d != "" {
		if strings.ContainsRune(d, filepath.Separator) {
			return fromFile(d)
		}
		list, err := netconf.FromConfDir(m.cfg.ConfDir, d)
		if err != nil {
			return plan.Network{}, fmt.Errorf("default network: %w", err)
		}
		return plan.Network{Key: list.Name, ConfList: list.Bytes}, nil
	}
	return DetectDefault(m.cfg.ConfDir, m.cfg.OwnConfName)
}

// DetectDefault finds the first conf in dir that is not multinet's own.
func DetectDefault(dir, own string) (plan.Network, error) {
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return plan.Network{}, fmt.Errorf("read CNI conf dir %s: %w", dir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		if filepath.Base(f) == own {
			continue
		}
		c := confFromFile(f)
		if c.err != nil || c.shim {
			continue
		}
		return c.n, nil
	}
	return plan.Network{}, fmt.Errorf("no cluster default network: no usable CNI conf in %s besides multinet's own (install the cluster network first, or set --default-network)", dir)
}

func fromFile(path string) (plan.Network, error) {
	c := confFromFile(path)
	return c.n, c.err
}

// confFile is a conf file read and parsed, with the identity of the file it came from.
type confFile struct {
	ino, dev uint64
	size     int64
	mtime    time.Time
	ctime    syscall.Timespec
	n        plan.Network
	shim     bool // it runs multinet's shim: never the cluster default network
	err      error
}

// confFiles caches conf files by path (confFile). Every ADD needs the cluster network's conf:
// while the file keeps its inode, size and times it is stat'ed, not read and parsed again.
var confFiles sync.Map

// confFromFile reads and parses the conf file at path, or returns the cached copy of it.
func confFromFile(path string) confFile {
	info, err := os.Stat(path)
	if err != nil {
		return confFile{err: fmt.Errorf("default network: %w", err)}
	}
	id := confFile{size: info.Size(), mtime: info.ModTime()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		id.ino, id.dev, id.ctime = st.Ino, st.Dev, st.Ctim
	}
	if v, ok := confFiles.Load(path); ok {
		if c := v.(confFile); c.ino == id.ino && c.dev == id.dev && c.size == id.size && c.mtime.Equal(id.mtime) && c.ctime == id.ctime {
			c.n.ConfList = slices.Clone(c.n.ConfList) // the caller's own copy
			return c
		}
	}
	c := parseConfFile(path)
	c.ino, c.dev, c.size, c.mtime, c.ctime = id.ino, id.dev, id.size, id.mtime, id.ctime
	if c.err == nil { // a file being written may parse next time
		confFiles.Store(path, c)
	}
	return c
}

// parseConfFile reads and parses the conf file at path. A file replaced between the stat and
// the read is cached under the old identity, so the next call reads it again.
func parseConfFile(path string) confFile {
	data, err := os.ReadFile(path)
	if err != nil {
		return confFile{err: fmt.Errorf("default network: %w", err)}
	}
	list, err := netconf.Parse(data, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	if err != nil {
		return confFile{err: fmt.Errorf("default network file %s: %w", path, err)}
	}
	return confFile{n: plan.Network{Key: list.Name, ConfList: list.Bytes}, shim: usesShim(list.Bytes)}
}

func usesShim(confList []byte) bool {
	var l struct {
		Plugins []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	if json.Unmarshal(confList, &l) != nil {
		return false
	}
	for _, p := range l.Plugins {
		if p.Type == ShimType {
			return true
		}
	}
	return false
}

// podDefault is the pod's default network: the v1.multus-cni.io/default-network NAD if the pod
// names one, else the cluster default.
func (m *Manager) podDefault(ctx context.Context, pod *corev1.Pod) (plan.Network, error) {
	ns, name, ok, err := selection.DefaultNetwork(pod.Annotations, pod.Namespace)
	if err != nil {
		return plan.Network{}, invalidf(types.ErrInvalidNetworkConfig, "annotation %s: %v", selection.DefaultNetworkAnnotation, err)
	}
	if !ok {
		return m.ClusterDefault()
	}
	return m.resolveNAD(ctx, pod.Namespace, &nadv1.NetworkSelectionElement{Name: name, Namespace: ns})
}

// resolveNAD finds the NAD an element names and parses its config. With namespace isolation
// on, a pod uses NADs of its own namespace and of the global namespaces only.
func (m *Manager) resolveNAD(ctx context.Context, podNS string, el *nadv1.NetworkSelectionElement) (plan.Network, error) {
	key := el.Namespace + "/" + el.Name
	if m.cfg.NamespaceIsolation && el.Namespace != podNS && !slices.Contains(m.cfg.GlobalNamespaces, el.Namespace) {
		return plan.Network{}, invalidf(types.ErrInvalidNetworkConfig,
			"network %q: namespace %q is neither the pod's namespace nor a global namespace (%s); namespaceIsolation is on",
			key, el.Namespace, strings.Join(m.cfg.GlobalNamespaces, ","))
	}
	nad, err := m.Pods.NAD(ctx, el.Namespace, el.Name)
	switch {
	case errors.Is(err, podinfo.ErrNotFound):
		return plan.Network{}, invalidf(types.ErrInvalidNetworkConfig, "network %q: NetworkAttachmentDefinition not found", key)
	case err != nil:
		return plan.Network{}, fmt.Errorf("network %q: %w: %w", key, ErrTryAgain, err)
	}
	confList, err := m.nadConfList(nad)
	if err != nil {
		return plan.Network{}, invalidf(types.ErrInvalidNetworkConfig, "network %q: spec.config: %v", key, err)
	}
	serial, err := serialNAD(key, nad.Annotations)
	if err != nil {
		return plan.Network{}, err
	}
	return plan.Network{Key: key, ConfList: confList, Element: el, Serial: serial,
		ResourceName: strings.TrimSpace(nad.Annotations[ResourceNameAnnotation])}, nil
}

// nadConf is a NAD's spec.config parsed, for the NAD version (UID and resourceVersion) it is
// from.
type nadConf struct {
	uid, version string
	confList     []byte
}

// maxNADConfs bounds the parsed NAD configs kept; past it the cache starts over.
const maxNADConfs = 1024

// nadConfList is the conflist of a NAD: its spec.config parsed, kept per NAD version so that
// an ADD does not parse it again; an empty spec.config is looked up in the conf dir each time.
func (m *Manager) nadConfList(nad *nadv1.NetworkAttachmentDefinition) ([]byte, error) {
	config := []byte(nad.Spec.Config)
	if len(bytes.TrimSpace(config)) == 0 {
		list, err := netconf.FromConfDir(m.cfg.ConfDir, nad.Name)
		if err != nil {
			return nil, err
		}
		return list.Bytes, nil
	}
	key := nad.Namespace + "/" + nad.Name
	if v, ok := m.nadConfs.Load(key); ok {
		if c := v.(nadConf); c.uid == string(nad.UID) && c.version == nad.ResourceVersion && nad.ResourceVersion != "" {
			return slices.Clone(c.confList), nil
		}
	}
	list, err := netconf.Parse(config, nad.Name)
	if err != nil {
		return nil, err
	}
	if m.nadConfCount.Add(1) > maxNADConfs {
		m.nadConfs.Clear()
		m.nadConfCount.Store(1)
	}
	m.nadConfs.Store(key, nadConf{uid: string(nad.UID), version: nad.ResourceVersion, confList: slices.Clone(list.Bytes)})
	return list.Bytes, nil
}
