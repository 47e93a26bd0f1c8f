package policy

import (
	"encoding/json"
	"net/netip"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	corev1 "k8s.io/api/core/v1"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/policy/compile"
)

// sandbox is a sandbox of this node as the policy engine knows it.
type sandbox struct {
	id, netns string
	uid       string
	pod       *compile.Pod
	ifaces    []compile.Interface
	// programmed is what its table holds, unless stale: after a restart (the table may hold
	// rules of policies gone since) or a failed attempt, the rules are programmed whatever
	// they are, none included (which removes the table).
	programmed []compile.Ruleset
	stale      bool
}

// sandboxOf reads what the policy engine needs of a sandbox's record: its secondary
// interfaces and their addresses, with the pod's labels and named ports.
func sandboxOf(sb *checkpoint.Sandbox, pod *corev1.Pod) *sandbox {
	p := &compile.Pod{Namespace: sb.PodNamespace, Name: sb.PodName, Addresses: map[string][]netip.Addr{}}
	if pod != nil {
		p.Labels = pod.Labels
		p.Ports = compile.NamedPorts(pod)
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
