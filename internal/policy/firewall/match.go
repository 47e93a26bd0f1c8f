package firewall

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/spec"
)

// The IP protocol numbers the rules match on.
const (
	protoICMP   = unix.IPPROTO_ICMP
	protoTCP    = unix.IPPROTO_TCP
	protoUDP    = unix.IPPROTO_UDP
	protoICMPv6 = unix.IPPROTO_ICMPV6
	protoSCTP   = unix.IPPROTO_SCTP
)

// addrField says which address of a packet is the remote end's.
type addrField int

const (
	source addrField = iota
	destination
)

// ipFamily is what an address match needs to know of IPv4 or IPv6.
type ipFamily struct {
	name    string
	nfproto byte
	key     nftables.SetDatatype
	offset  [2]uint32 // of the source and the destination address in the network header
	len     uint32
}

var (
	ipv4 = ipFamily{name: "ip", nfproto: unix.NFPROTO_IPV4, key: nftables.TypeIPAddr, offset: [2]uint32{12, 16}, len: 4}
	ipv6 = ipFamily{name: "ip6", nfproto: unix.NFPROTO_IPV6, key: nftables.TypeIP6Addr, offset: [2]uint32{8, 24}, len: 16}
)

// family is the address ranges of one family an Allow matches.
type family struct {
	ipFamily
	ranges []addrRange
}

// addrMatch is `meta nfproto ipvX ipX saddr|daddr <ranges>`: a comparison for one range, an
// interval set (named: the rules of each port range share it) for more.
func (b *batch) addrMatch(f addrField, fam family, set string) ([]expr.Any, error) {
	m := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fam.nfproto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: fam.offset[f], Len: fam.len},
	}
	if len(fam.ranges) == 1 {
		return append(m, inRange(fam.ranges[0].first.AsSlice(), fam.ranges[0].last.AsSlice())), nil
	}
	if old, ok := b.kept[set]; ok {
		if err := b.updateElements(set, fam, old.ranges); err != nil {
			return nil, err
		}
		return append(m, &expr.Lookup{SourceRegister: 1, SetName: set}), nil
	}
	s, err := b.intervalSet(set, fam.key, intervalElements(fam.ranges))
	if err != nil {
		return nil, err
	}
	return append(m, &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID}), nil
}

// portMatches is one match per port range (`meta l4proto tcp th dport 80-90`), or a single
// empty match when there are none: every protocol and port.
func portMatches(ports []compile.PortRange) ([][]expr.Any, error) {
	if len(ports) == 0 {
		return [][]expr.Any{nil}, nil
	}
	ms := make([][]expr.Any, 0, len(ports))
	for _, p := range ports {
		m, err := portMatch(p)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

func portMatch(p compile.PortRange) ([]expr.Any, error) {
	proto, ok := map[spec.Protocol]byte{spec.TCP: protoTCP, spec.UDP: protoUDP, spec.SCTP: protoSCTP}[p.Protocol]
	if !ok {
		return nil, fmt.Errorf("protocol %q: not TCP, UDP or SCTP", p.Protocol)
	}
	m := l4proto(proto)
	last := p.Last
	if last == 0 {
		last = p.First
	}
	switch {
	case p.First == 0:
		return m, nil
	case last < p.First:
		return nil, fmt.Errorf("port range %d-%d: ends before it starts", p.First, p.Last)
	}
	return append(m, transport(2, 2), inRange(port(p.First), port(last))), nil
}

// alwaysPass is the matches of what passes every isolated direction: ICMPv6 neighbour
// discovery and MLD, DHCP and DHCPv6 (client and server ports the right way round), and
// echo when o says so.
func alwaysPass(d direction, o Options) [][]expr.Any {
	ms := [][]expr.Any{
		icmpTypes(protoICMPv6, 130, 136), // MLD query, report, done; ND RS, RA, NS, NA
		icmpTypes(protoICMPv6, 143, 143), // MLDv2 report
		udpPorts(d.dhcpPort),
		udpPorts(d.dhcp6),
	}
	if o.AcceptICMPEcho {
		ms = append(ms,
			icmpTypes(protoICMP, 0, 0), // echo reply
			icmpTypes(protoICMP, 8, 8), // echo request
			icmpTypes(protoICMPv6, 128, 129),
		)
	}
	return ms
}

func icmpTypes(proto byte, first, last byte) []expr.Any {
	return append(l4proto(proto), transport(0, 1), inRange([]byte{first}, []byte{last}))
}

// udpPorts is `meta l4proto udp th sport P[0] th dport P[1]`.
func udpPorts(p [2]uint16) []expr.Any {
	return append(l4proto(protoUDP),
		transport(0, 2), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port(p[0])},
		transport(2, 2), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port(p[1])},
	)
}

func l4proto(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// transport loads n bytes at offset of the transport header into register 1.
func transport(offset, n uint32) *expr.Payload {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: offset, Len: n}
}

// inRange compares register 1 with one value or an inclusive range.
func inRange(first, last []byte) expr.Any {
	if string(first) == string(last) {
		return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: first}
	}
	return &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: first, ToData: last}
}

func port(p uint16) []byte { return binaryutil.BigEndian.PutUint16(p) }

// ctEstablishedOrRelated is `ct state established,related`.
func ctEstablishedOrRelated() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{
			SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  make([]byte, 4),
		},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ifNameIs is `iifname NAME` or `oifname NAME`.
func ifNameIs(key expr.MetaKey, name string) []expr.Any {
	padded := make([]byte, unix.IFNAMSIZ)
	copy(padded, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: padded},
	}
}

func accept() []expr.Any { return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}} }

func jump(chain string) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}
}
