// Package plan turns a pod's networks into the ordered delegate invocations that attach them:
// the cluster default network first, then one per selection element, each with its interface
// name, CNI_ARGS and capability arguments. It is a pure function of its inputs.
package plan

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"strconv"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

// Pod names the pod a sandbox belongs to.
type Pod struct {
	Namespace, Name, UID string
}

func (p Pod) String() string { return p.Namespace + "/" + p.Name }

// Network is a resolved network: its conflist and, for a secondary network, the selection
// element that asked for it.
type Network struct {
	Key      string // "namespace/name" of the NAD, or the default network's name
	ConfList []byte
	Element  *nadv1.NetworkSelectionElement // nil for the cluster default network
	// Serial is set when the network's NAD opted out of parallel attach: its delegates run
	// alone, never beside another network's.
	Serial bool
	// ResourceName is the NAD's k8s.v1.cni.cncf.io/resourceName: the network is
	// device-backed, each attachment taking a device of the pod's ResourceClaims.
	ResourceName string
}

// Delegate is one planned invocation.
type Delegate struct {
	Network        string
	Default        bool
	IfName         string
	ConfList       []byte
	Args           [][2]string
	CapabilityArgs map[string]any
	DefaultRoute   []net.IP // gateways the element asked to carry the default route
	Selection      string   // Identity of the element, for a secondary network
	Serial         bool     // run alone, after the networks attached in parallel (Network.Serial)
	ResourceName   string   // Network.ResourceName: the attachment takes a device
	// Meta are entries the attachment's record keeps besides the planned ones (its device).
	Meta map[string]string
}

// NetworkArg is the CNI_ARGS key that names the network to its plugins.
const NetworkArg = "MULTINET_NETWORK"

// podArgs are the CNI_ARGS every delegate gets, as kubelet-era runtimes pass them.
func podArgs(pod Pod, containerID, network string) [][2]string {
	return [][2]string{
		{"IgnoreUnknown", "true"},
		{"K8S_POD_NAMESPACE", pod.Namespace},
		{"K8S_POD_NAME", pod.Name},
		{"K8S_POD_INFRA_CONTAINER_ID", containerID},
		{"K8S_POD_UID", pod.UID},
		{NetworkArg, network},
	}
}

// Default plans the cluster default network on ifname, passing the runtime's own
// capability arguments (port mappings, bandwidth, ...) through unchanged.
func Default(pod Pod, containerID string, n Network, ifname string, runtimeConfig map[string]any) Delegate {
	return Delegate{
		Network:        n.Key,
		Default:        true,
		IfName:         ifname,
		ConfList:       n.ConfList,
		Args:           podArgs(pod, containerID, n.Key),
		CapabilityArgs: runtimeConfig,
	}
}

// Attachments plans the secondary networks in order. Interfaces without an explicit name take
// the lowest free netN; taken lists names already in use in the sandbox (the default
// network's interface, attachments made earlier).
func Attachments(pod Pod, containerID string, nets []Network, taken []string) ([]Delegate, error) {
	used := make(map[string]bool, len(taken)+len(nets))
	for _, n := range taken {
		used[n] = true
	}
	for _, n := range nets {
		if ifn := n.Element.InterfaceRequest; ifn != "" {
			if used[ifn] {
				return nil, fmt.Errorf("network %q: interface %q is already in use in the pod", n.Key, ifn)
			}
			used[ifn] = true
		}
	}
	out := make([]Delegate, 0, len(nets))
	next := 1
	for _, n := range nets {
		ifname := n.Element.InterfaceRequest
		if ifname == "" {
			for used["net"+strconv.Itoa(next)] {
				next++
			}
			ifname = "net" + strconv.Itoa(next)
			used[ifname] = true
		}
		d, err := attachment(pod, containerID, n, ifname)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func attachment(pod Pod, containerID string, n Network, ifname string) (Delegate, error) {
	el := n.Element
	conf, declared, err := withPluginArgs(n.ConfList, el)
	if err != nil {
		return Delegate{}, fmt.Errorf("network %q: %w", n.Key, err)
	}
	args := podArgs(pod, containerID, n.Key)
	if el.MacRequest != "" && !declared["mac"] {
		args = append(args, [2]string{"MAC", el.MacRequest})
	}
	return Delegate{
		Network:        n.Key,
		IfName:         ifname,
		ConfList:       conf,
		Args:           args,
		CapabilityArgs: capabilityArgs(el),
		DefaultRoute:   el.GatewayRequest,
		Selection:      Identity(el),
		Serial:         n.Serial,
		ResourceName:   n.ResourceName,
	}, nil
}

// capabilityArgs maps the element's requests onto the well-known CNI capabilities.
func capabilityArgs(el *nadv1.NetworkSelectionElement) map[string]any {
	caps := map[string]any{}
	if len(el.IPRequest) > 0 {
		caps["ips"] = el.IPRequest
	}
	if el.MacRequest != "" {
		caps["mac"] = el.MacRequest
	}
	if el.InfinibandGUIDRequest != "" {
		caps["infinibandGUID"] = el.InfinibandGUIDRequest
	}
	if len(el.PortMappingsRequest) > 0 {
		caps["portMappings"] = el.PortMappingsRequest
	}
	if el.BandwidthRequest != nil {
		caps["bandwidth"] = el.BandwidthRequest
	}
	if len(caps) == 0 {
		return nil
	}
	return caps
}

// withPluginArgs writes the element's per-attachment arguments into each plugin's
// "args": {"cni": {...}}, where plugins read them from the network config: its cni-args, and
// its requested ips for every plugin that does not declare the "ips" capability (libcni hands
// those to the plugins that declare it, as runtimeConfig; giving both would make host-local
// ask for each address twice). ips never go into CNI_ARGS: IP= holds one address only, so a
// dual-stack request there fails to parse, on ADD and on DEL alike. It also returns the
// capabilities some plugin of the list declares.
func withPluginArgs(confList []byte, el *nadv1.NetworkSelectionElement) ([]byte, map[string]bool, error) {
	var list map[string]any
	if err := json.Unmarshal(confList, &list); err != nil {
		return nil, nil, fmt.Errorf("conflist: %w", err)
	}
	declared := map[string]bool{}
	changed := false
	plugins, _ := list["plugins"].([]any)
	for _, p := range plugins {
		plugin, ok := p.(map[string]any)
		if !ok {
			continue
		}
		caps := capabilitiesOf(plugin)
		for c := range caps {
			declared[c] = true
		}
		add := map[string]any{}
		if el.CNIArgs != nil {
			maps.Copy(add, *el.CNIArgs)
		}
		if len(el.IPRequest) > 0 && !caps["ips"] {
			add["ips"] = el.IPRequest
		}
		if len(add) > 0 {
			mergeCNIArgs(plugin, add)
			changed = true
		}
	}
	if !changed {
		return confList, declared, nil
	}
	out, err := json.Marshal(list)
	return out, declared, err
}

// capabilitiesOf is the set of capabilities a plugin conf declares as true.
func capabilitiesOf(plugin map[string]any) map[string]bool {
	caps := map[string]bool{}
	declared, _ := plugin["capabilities"].(map[string]any)
	for k, v := range declared {
		if on, _ := v.(bool); on {
			caps[k] = true
		}
	}
	return caps
}

// mergeCNIArgs merges args into the plugin's "args": {"cni": {...}}.
func mergeCNIArgs(plugin map[string]any, args map[string]any) {
	all, _ := plugin["args"].(map[string]any)
	if all == nil {
		all = map[string]any{}
	}
	cni, _ := all["cni"].(map[string]any)
	if cni == nil {
		cni = map[string]any{}
	}
	maps.Copy(cni, args)
	all["cni"] = cni
	plugin["args"] = all
}
