package policy

import (
	"encoding/json"
	"net/netip"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/spec"
)

// sandbox is a sandbox of this node as the policy engine knows it.
type sandbox struct {
	id, netns string
	uid       string
	pod       *compile.Pod
	ifaces    []compile.Interface
	// programmed is what its table holds, when known is set (unknown after a restart or a
	// failed attempt: then whatever the rules are, they are programmed).
	programmed []compile.Ruleset
	known      bool
}

// sandboxOf reads what the policy engine needs of a sandbox's record: its secondary
// interfaces and their addresses, with the pod's labels and named ports.
func sandboxOf(sb *checkpoint.Sandbox, pod *corev1.Pod) *sandbox {
	p := &compile.Pod{Namespace: sb.PodNamespace, Name: sb.PodName, Addresses: map[string][]netip.Addr{}}
	if pod != nil {
		p.Labels = pod.Labels
		p.Ports = namedPorts(pod)
	}
	s := &sandbox{id: sb.ContainerID, netns: sb.Netns, uid: sb.PodUID, pod: p}
	for _, a := range sb.Attachments {
		if a.Default || (a.State != checkpoint.Added && a.State != checkpoint.Adding) {
			continue // an interface about to be added has its rules first, its addresses after
		}
		s.ifaces = append(s.ifaces, compile.Interface{IfName: a.IfName, Network: a.Network})
		p.Addresses[a.Network] = append(p.Addresses[a.Network], resultAddrs(a.Result)...)
	}
	return s
}

// resultAddrs are the addresses of a delegate's CNI result (none if it cannot be read).
func resultAddrs(raw json.RawMessage) []netip.Addr {
	if len(raw) == 0 {
		return nil
	}
	r, err := create.CreateFromBytes(raw)
	if err != nil {
		return nil
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, ip := range res.IPs {
		if a, ok := netip.AddrFromSlice(ip.Address.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// namedPorts are the pod's containers' ports that have a name.
func namedPorts(pod *corev1.Pod) []compile.NamedPort {
	var out []compile.NamedPort
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, p := range c.Ports {
				if p.Name == "" || p.ContainerPort <= 0 || p.ContainerPort > 65535 {
					continue
				}
				proto := spec.Protocol(p.Protocol)
				if proto == "" {
					proto = spec.TCP
				}
				out = append(out, compile.NamedPort{Name: p.Name, Protocol: proto, Port: uint16(p.ContainerPort)})
			}
		}
	}
	return out
}

// statusAddrs are the addresses a pod's network-status gives, by network.
func statusAddrs(annotations map[string]string) map[string][]netip.Addr {
	raw := annotations[nadv1.NetworkStatusAnnot]
	if raw == "" {
		return nil
	}
	var st []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil
	}
	out := map[string][]netip.Addr{}
	for _, s := range st {
		if s.Default {
			continue
		}
		for _, ip := range s.IPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				out[s.Name] = append(out[s.Name], a.Unmap())
			}
		}
	}
	return out
}
