package compile

import (
	"encoding/json"
	"net/netip"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/multinet/multinet/internal/policy/spec"
)

// PodOf is what the policy engine knows of a Kubernetes pod: its namespace, name, labels,
// named container ports, and the addresses its network-status annotation gives on each
// secondary network (entries named "namespace/name"; the cluster network's are left out).
func PodOf(pod *corev1.Pod) *Pod {
	return &Pod{Namespace: pod.Namespace, Name: pod.Name, Labels: pod.Labels,
		Addresses: StatusAddresses(pod.Annotations[nadv1.NetworkStatusAnnot]), Ports: NamedPorts(pod)}
}

// StatusAddresses are the addresses of a network-status annotation's secondary entries, by
// network; nil for an empty or unreadable value.
func StatusAddresses(networkStatus string) map[string][]netip.Addr {
	if networkStatus == "" {
		return nil
	}
	var st []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(networkStatus), &st); err != nil {
		return nil
	}
	out := map[string][]netip.Addr{}
	for _, s := range st {
		if s.Default || !strings.Contains(s.Name, "/") {
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

// NamedPorts are the container ports of pod that have a name (TCP when the protocol is left
// out).
func NamedPorts(pod *corev1.Pod) []NamedPort {
	var out []NamedPort
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
				out = append(out, NamedPort{Name: p.Name, Protocol: proto, Port: uint16(p.ContainerPort)})
			}
		}
	}
	return out
}
