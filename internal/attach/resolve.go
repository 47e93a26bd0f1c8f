package attach

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

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
		n, err := fromFile(f)
		if err != nil || usesShim(n.ConfList) {
			continue
		}
		return n, nil
	}
	return plan.Network{}, fmt.Errorf("no cluster default network: no usable CNI conf in %s besides multinet's own (install the cluster network first, or set --default-network)", dir)
}

func fromFile(path string) (plan.Network, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return plan.Network{}, fmt.Errorf("default network: %w", err)
	}
	list, err := netconf.Parse(data, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	if err != nil {
		return plan.Network{}, fmt.Errorf("default network file %s: %w", path, err)
	}
	return plan.Network{Key: list.Name, ConfList: list.Bytes}, nil
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
	list, err := netconf.Resolve([]byte(nad.Spec.Config), nad.Name, m.cfg.ConfDir)
	if err != nil {
		return plan.Network{}, invalidf(types.ErrInvalidNetworkConfig, "network %q: spec.config: %v", key, err)
	}
	serial, err := serialNAD(key, nad.Annotations)
	if err != nil {
		return plan.Network{}, err
	}
	return plan.Network{Key: key, ConfList: list.Bytes, Element: el, Serial: serial}, nil
}
