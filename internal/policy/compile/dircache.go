package compile

import (
	"slices"
	"strings"

	"github.com/multinet/multinet/internal/policy/spec"
)

// cachedDirection is a direction worked out for an interface on a network from policies.
type cachedDirection struct {
	policies []*spec.Policy
	dir      *Direction
}

// cachedDirection is x.direction, remembered for the other pods of the batch that the same
// policies select on the same network, unless it depends on pod: on ingress, the named
// ports resolve against pod's own. Every caller gets its own copy.
func (x *Index) cachedDirection(pod *Pod, iface Interface, applying []*spec.Policy, w way) *Direction {
	if w == ingress && slices.ContainsFunc(applying, namesIngressPorts) {
		return x.direction(pod, iface, applying, w)
	}
	key := directionKey(iface.Network, applying, w)
	if c, ok := x.dirs[key]; ok && slices.Equal(c.policies, applying) {
		return cloneDirection(c.dir)
	}
	d := x.direction(pod, iface, applying, w)
	x.dirs[key] = cachedDirection{policies: applying, dir: d}
	return cloneDirection(d)
}

// namesIngressPorts reports whether p isolates ingress with a rule that names a port.
func namesIngressPorts(p *spec.Policy) bool {
	return p.Ingress && slices.ContainsFunc(p.IngressRules, func(r spec.Rule) bool {
		return slices.ContainsFunc(r.Ports, func(port spec.Port) bool { return port.Name != "" })
	})
}

// directionKey names a direction of the interfaces on network that policies apply to.
func directionKey(network string, policies []*spec.Policy, w way) string {
	var b strings.Builder
	b.WriteString(network)
	b.WriteByte(byte('0' + w))
	for _, p := range policies {
		b.WriteByte(0)
		b.WriteString(p.Namespace)
		b.WriteByte('/')
		b.WriteString(p.Name)
	}
	return b.String()
}

// cloneDirection is a copy of d that shares no memory with it.
func cloneDirection(d *Direction) *Direction {
	if d == nil {
		return nil
	}
	c := &Direction{}
	if d.Allow != nil {
		c.Allow = make([]Allow, len(d.Allow))
	}
	for i, a := range d.Allow {
		c.Allow[i] = Allow{Any: a.Any, Addrs: slices.Clone(a.Addrs), Ports: slices.Clone(a.Ports)}
	}
	return c
}
