package firewall

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/multinet/multinet/internal/policy/compile"
)

// direction is what differs between the chains of ingress and egress.
type direction struct {
	name     string // "ingress" or "egress", as Read reports it
	prefix   string // of the per-interface chain: "in-" or "out-"
	base     string // the base chain jumping to it
	hook     *nftables.ChainHook
	ifKey    expr.MetaKey // iifname or oifname
	remote   addrField    // where the remote end's address is: source or destination
	dhcpPort [2]uint16    // DHCPv4 source and destination port of what passes
	dhcp6    [2]uint16    // DHCPv6 likewise
}

var (
	ingress = direction{
		name: "ingress", prefix: "in-", base: "input", hook: nftables.ChainHookInput,
		ifKey: expr.MetaKeyIIFNAME, remote: source,
		dhcpPort: [2]uint16{67, 68}, dhcp6: [2]uint16{547, 546},
	}
	egress = direction{
		name: "egress", prefix: "out-", base: "output", hook: nftables.ChainHookOutput,
		ifKey: expr.MetaKeyOIFNAME, remote: destination,
		dhcpPort: [2]uint16{68, 67}, dhcp6: [2]uint16{546, 547},
	}
)

// batch collects one transaction on a connection: the table, its chains, rules and sets.
type batch struct {
	c     *nftables.Conn
	table *nftables.Table
	setID uint32 // the last set's id; ids are only meaningful inside one batch
	// create: the table is not there; adding it must fail should it be there by then.
	create bool
	// kept are the sets an Update keeps for the chain it refills, with their elements as
	// they are: the allows that need them again update their elements.
	kept map[string]family
	// before: the handle of the rule that rules go before, rather than at the chain's end
	before uint64
}

func newBatch(c *nftables.Conn) *batch {
	return &batch{c: c, table: &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}}
}

// replaceTable queues the deletion of whatever table is there: adding it first (a no-op
// when it exists) makes the deletion valid the first time too.
func (b *batch) replaceTable() {
	b.c.AddTable(b.table)
	b.c.DelTable(b.table)
}

// program queues the table for rs, unless no direction of rs is isolated.
func (b *batch) program(rs []compile.Ruleset, o Options) error {
	var in, out []compile.Ruleset
	for _, r := range rs {
		if r.Ingress != nil {
			in = append(in, r)
		}
		if r.Egress != nil {
			out = append(out, r)
		}
	}
	if len(in) == 0 && len(out) == 0 {
		return nil
	}
	if b.create {
		b.c.CreateTable(b.table)
	} else {
		b.c.AddTable(b.table)
	}
	if err := b.direction(ingress, in, func(r compile.Ruleset) *compile.Direction { return r.Ingress }, o); err != nil {
		return err
	}
	return b.direction(egress, out, func(r compile.Ruleset) *compile.Direction { return r.Egress }, o)
}

// direction queues, when some ruleset isolates d, its base chain, and for each ruleset its
// interface's chain and the jump to it.
func (b *batch) direction(d direction, rs []compile.Ruleset, of func(compile.Ruleset) *compile.Direction, o Options) error {
	if len(rs) == 0 {
		return nil
	}
	base := b.c.AddChain(&nftables.Chain{
		Name: d.base, Table: b.table, Type: nftables.ChainTypeFilter,
		Hooknum: d.hook, Priority: nftables.ChainPriorityFilter, Policy: policyAccept(),
	})
	for _, r := range rs {
		ch := b.c.AddChain(&nftables.Chain{Name: d.prefix + r.IfName, Table: b.table})
		if err := b.chain(ch, d, of(r), o); err != nil {
			return fmt.Errorf("interface %s %s: %w", r.IfName, d.name, err)
		}
		b.rule(base, ifNameIs(d.ifKey, r.IfName), jump(ch.Name))
	}
	return nil
}

// chain queues the rules of one interface and direction: replies, what always passes, the
// allows, and the counted drop of the rest.
func (b *batch) chain(ch *nftables.Chain, d direction, dir *compile.Direction, o Options) error {
	b.rule(ch, ctEstablishedOrRelated(), accept())
	for _, m := range alwaysPass(d, o) {
		b.rule(ch, m, accept())
	}
	for i, a := range dir.Allow {
		if err := b.allow(ch, d, i, a); err != nil {
			return fmt.Errorf("allow %d: %w", i, err)
		}
	}
	b.rule(ch, []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}})
	return nil
}

// allow queues the rules of the i-th Allow: one per address family and port range. The
// rules of one family share the set of its addresses.
func (b *batch) allow(ch *nftables.Chain, d direction, i int, a compile.Allow) error {
	ports, err := portMatches(a.Ports)
	if err != nil {
		return err
	}
	if a.Any {
		for _, p := range ports {
			b.rule(ch, p, accept())
		}
		return nil
	}
	v4, v6, err := splitFamilies(a.Addrs)
	if err != nil {
		return err
	}
	for _, fam := range []family{{ipv4, v4}, {ipv6, v6}} {
		if len(fam.ranges) == 0 {
			continue
		}
		m, err := b.addrMatch(d.remote, fam, setName(ch.Name, i, fam))
		if err != nil {
			return err
		}
		for _, p := range ports {
			b.rule(ch, m, p, accept())
		}
	}
	return nil
}

// rule queues a rule made of the expressions of parts, in order.
func (b *batch) rule(ch *nftables.Chain, parts ...[]expr.Any) {
	var exprs []expr.Any
	for _, p := range parts {
		exprs = append(exprs, p...)
	}
	r := &nftables.Rule{Table: b.table, Chain: ch, Exprs: exprs}
	if b.before != 0 {
		r.Position = b.before
		b.c.InsertRule(r)
		return
	}
	b.c.AddRule(r)
}

// intervalSet queues a set of address intervals, for the lookups of one allow. It is not
// constant: Update changes its elements when only the addresses of the allow change.
func (b *batch) intervalSet(name string, key nftables.SetDatatype, elems []nftables.SetElement) (*nftables.Set, error) {
	b.setID++
	s := &nftables.Set{Table: b.table, ID: b.setID, Name: name, Interval: true, KeyType: key}
	if err := b.c.AddSet(s, elems); err != nil {
		return nil, fmt.Errorf("set %s: %w", name, err)
	}
	return s, nil
}

func policyAccept() *nftables.ChainPolicy {
	p := nftables.ChainPolicyAccept
	return &p
}
