package spec

import (
	"errors"
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Parse validates p as the API server validates a NetworkPolicy and compiles it into a
// Policy. A policy without PolicyForAnnotation (or with an empty one) parses, with no
// Networks: it applies to no network. Rules of a direction the policy does not isolate are
// validated and then dropped, since they have no effect. Every fault is reported, in an
// *Error.
func Parse(p *MultiNetworkPolicy) (*Policy, error) {
	if p == nil {
		return nil, errors.New("no MultiNetworkPolicy")
	}
	var f faults
	pol := &Policy{Namespace: p.Namespace, Name: p.Name}
	pol.Networks = f.policyFor(p)
	s := &p.Spec
	specPath := field.NewPath("spec")
	pol.PodSelector = f.selector(specPath.Child("podSelector"), &s.PodSelector)
	pol.Ingress, pol.Egress = f.policyTypes(specPath.Child("policyTypes"), s)
	for i := range s.Ingress {
		r := f.rule(specPath.Child("ingress").Index(i), "from", s.Ingress[i].From, s.Ingress[i].Ports)
		if pol.Ingress {
			pol.IngressRules = append(pol.IngressRules, r)
		}
	}
	for i := range s.Egress {
		r := f.rule(specPath.Child("egress").Index(i), "to", s.Egress[i].To, s.Egress[i].Ports)
		if pol.Egress {
			pol.EgressRules = append(pol.EgressRules, r)
		}
	}
	if len(f.list) > 0 {
		return nil, &Error{Faults: f.list}
	}
	return pol, nil
}

// policyFor reads PolicyForAnnotation.
func (f *faults) policyFor(p *MultiNetworkPolicy) []string {
	value := p.Annotations[PolicyForAnnotation]
	nets, errs := networks(value, p.Namespace)
	path := field.NewPath("metadata", "annotations").Key(PolicyForAnnotation)
	for _, e := range errs {
		f.add(field.ErrorTypeInvalid, path, value, "%s", e)
	}
	return nets
}

// policyTypes says which directions the policy isolates: those listed, or when none are,
// ingress and, if it has egress rules, egress.
func (f *faults) policyTypes(p *field.Path, s *networkingv1.NetworkPolicySpec) (ingress, egress bool) {
	if len(s.PolicyTypes) == 0 {
		return true, len(s.Egress) > 0
	}
	for i, t := range s.PolicyTypes {
		seen := &ingress
		switch t {
		case networkingv1.PolicyTypeIngress:
		case networkingv1.PolicyTypeEgress:
			seen = &egress
		default:
			f.add(field.ErrorTypeNotSupported, p.Index(i), string(t), "%q is not Ingress or Egress", clip(string(t)))
			continue
		}
		if *seen {
			f.add(field.ErrorTypeDuplicate, p.Index(i), string(t), "%q is listed twice", t)
		}
		*seen = true
	}
	return ingress, egress
}

// rule compiles an ingress rule (peers under "from") or an egress rule ("to").
func (f *faults) rule(p *field.Path, peersField string, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) Rule {
	var r Rule
	for i := range peers {
		if peer, ok := f.peer(p.Child(peersField).Index(i), &peers[i]); ok {
			r.Peers = append(r.Peers, peer)
		}
	}
	for i := range ports {
		if port, ok := f.port(p.Child("ports").Index(i), &ports[i]); ok {
			r.Ports = append(r.Ports, port)
		}
	}
	return r
}

// peer compiles one element of from or to: an ipBlock, or pods by selectors.
func (f *faults) peer(p *field.Path, peer *networkingv1.NetworkPolicyPeer) (Peer, bool) {
	selectors := peer.PodSelector != nil || peer.NamespaceSelector != nil
	switch {
	case peer.IPBlock != nil && selectors:
		f.add(field.ErrorTypeForbidden, p, nil, "ipBlock together with podSelector or namespaceSelector: a peer is one or the other")
		return Peer{}, false
	case peer.IPBlock != nil:
		block, ok := f.ipBlock(p.Child("ipBlock"), peer.IPBlock)
		return Peer{Block: block}, ok
	case !selectors:
		f.add(field.ErrorTypeRequired, p, nil, "empty peer: podSelector, namespaceSelector or ipBlock is required")
		return Peer{}, false
	}
	mark := f.mark()
	var out Peer
	if peer.PodSelector != nil {
		out.PodSelector = f.selector(p.Child("podSelector"), peer.PodSelector)
	}
	if peer.NamespaceSelector != nil {
		out.NamespaceSelector = f.selector(p.Child("namespaceSelector"), peer.NamespaceSelector)
	}
	return out, !f.since(mark)
}

// ipBlock compiles an ipBlock: cidr, and excepts of its family strictly inside it.
func (f *faults) ipBlock(p *field.Path, b *networkingv1.IPBlock) (*Block, bool) {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		f.add(field.ErrorTypeInvalid, p.Child("cidr"), b.CIDR, "%q is not a CIDR", clip(b.CIDR))
		return nil, false
	}
	out := &Block{CIDR: cidr.Masked()}
	mark := f.mark()
	for i, s := range b.Except {
		if except, ok := f.except(p.Child("except").Index(i), s, out.CIDR, b.CIDR); ok {
			out.Except = append(out.Except, except)
		}
	}
	return out, !f.since(mark)
}

// except checks one except of a block, cidr (cidrText as written).
func (f *faults) except(p *field.Path, s string, cidr netip.Prefix, cidrText string) (netip.Prefix, bool) {
	except, err := netip.ParsePrefix(s)
	if err != nil {
		f.add(field.ErrorTypeInvalid, p, s, "%q is not a CIDR", clip(s))
		return netip.Prefix{}, false
	}
	except = except.Masked()
	switch {
	case except.Addr().Is4() != cidr.Addr().Is4():
		f.add(field.ErrorTypeInvalid, p, s, "%q is not of the address family of cidr %q", s, cidrText)
	case except == cidr:
		f.add(field.ErrorTypeInvalid, p, s, "%q is all of cidr %q: an except must be strictly inside it", s, cidrText)
	case except.Bits() < cidr.Bits() || !cidr.Contains(except.Addr()):
		f.add(field.ErrorTypeInvalid, p, s, "%q is not inside cidr %q", s, cidrText)
	default:
		return except, true
	}
	return netip.Prefix{}, false
}

// protocols are the protocols a port may name.
var protocols = []Protocol{TCP, UDP, SCTP}

// port compiles one entry of ports: a protocol with a port number, a range (endPort) or a
// named port, or every port of the protocol.
func (f *faults) port(p *field.Path, port *networkingv1.NetworkPolicyPort) (Port, bool) {
	mark := f.mark()
	out := Port{Protocol: TCP}
	if port.Protocol != nil {
		out.Protocol = Protocol(*port.Protocol)
		if !slices.Contains(protocols, out.Protocol) {
			f.add(field.ErrorTypeNotSupported, p.Child("protocol"), string(out.Protocol), "%q is not TCP, UDP or SCTP", clip(string(out.Protocol)))
		}
	}
	switch {
	case port.Port == nil:
	case port.Port.Type == intstr.Int:
		out.Number = f.portNumber(p.Child("port"), port.Port.IntVal)
	default:
		out.Name = port.Port.StrVal
		if errs := validation.IsValidPortName(out.Name); len(errs) > 0 {
			f.add(field.ErrorTypeInvalid, p.Child("port"), out.Name, "%q is not a port name: %s", clip(out.Name), errs[0])
		}
	}
	if port.EndPort != nil {
		out.End = f.endPort(p, port, out.Number)
	}
	return out, !f.since(mark)
}

// portNumber checks a port number.
func (f *faults) portNumber(p *field.Path, n int32) uint16 {
	if n < 1 || n > 65535 {
		f.add(field.ErrorTypeInvalid, p, n, "%d is not a port number (1 to 65535)", n)
		return 0
	}
	return uint16(n)
}

// endPort checks endPort: the end of a range that starts at a port number, number.
func (f *faults) endPort(p *field.Path, port *networkingv1.NetworkPolicyPort, number uint16) uint16 {
	end := *port.EndPort
	path := p.Child("endPort")
	switch {
	case port.Port == nil:
		f.add(field.ErrorTypeForbidden, path, end, "endPort %d without a port: a range needs its first port", end)
	case port.Port.Type != intstr.Int:
		f.add(field.ErrorTypeForbidden, path, end, "endPort %d with the named port %q: a range needs a port number", end, clip(port.Port.StrVal))
	case number == 0:
		// port is out of range, reported already
	case end < int32(number) || end > 65535:
		f.add(field.ErrorTypeInvalid, path, end, "%d is not a port number from port %d to 65535", end, number)
	default:
		return uint16(end)
	}
	return 0
}
