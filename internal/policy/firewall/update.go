package firewall

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/nftables"

	"github.com/multinet/multinet/internal/policy/compile"
)

// Update makes multinet's table in the network namespace at netnsPath exactly cur, as
// Program does, given old: the rules last programmed there with o. One atomic netlink
// transaction touches only what differs: a chain whose rules are unchanged is kept; a chain
// whose allows differ only in the addresses of their sets gets those sets' elements
// updated, rules untouched; another changed chain is flushed and filled again; the jumps
// of a base chain are redone only when its interfaces change. The same rules in cur as in
// old send nothing at all. When the table appears or goes, and when the kernel refuses
// the edit (old is not what it has), the whole table is replaced by Program.
func Update(netnsPath string, old, cur []compile.Ruleset, o Options) error {
	_, err := update(netnsPath, old, cur, o)
	return err
}

// outcome is what update did.
type outcome int

const (
	unchanged outcome = iota // nothing sent
	edited                   // the differences sent
	replaced                 // the table replaced (or made, or deleted) by Program
)

func update(netnsPath string, old, cur []compile.Ruleset, o Options) (outcome, error) {
	if err := validate(cur); err != nil {
		return unchanged, fmt.Errorf("netns %s: %w", netnsPath, err)
	}
	if !isolates(old) || !isolates(cur) {
		if !isolates(old) && !isolates(cur) {
			return unchanged, nil
		}
		return replaced, Program(netnsPath, cur, o)
	}
	dirs := []directionEdit{edits(ingress, old, cur), edits(egress, old, cur)}
	if !slices.ContainsFunc(dirs, directionEdit.changes) {
		return unchanged, nil
	}
	var built error
	err := withConn(netnsPath, func(c *nftables.Conn) error {
		b := newBatch(c)
		for _, de := range dirs {
			if built = b.updateDirection(de, o); built != nil {
				return fmt.Errorf("netns %s: building table %s: %w", netnsPath, TableName, built)
			}
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("netns %s: updating table %s: %w", netnsPath, TableName, err)
		}
		return nil
	})
	if err == nil || built != nil || errors.Is(err, ErrNoNetns) {
		return edited, err
	}
	// The transaction changed nothing: the table is not as old has it. Replace it.
	return replaced, Program(netnsPath, cur, o)
}

// isolates tells whether some direction of rs is isolated: whether its table exists.
func isolates(rs []compile.Ruleset) bool {
	return slices.ContainsFunc(rs, func(r compile.Ruleset) bool { return r.Ingress != nil || r.Egress != nil })
}

// chainEdit is the chain of one interface and direction as old has it and as cur wants
// it (nil: no chain).
type chainEdit struct {
	ifName   string
	old, cur *compile.Direction
}

// directionEdit is the chains of one direction: cur's interfaces in order, then those
// only old has; jumps says whether the base chain's jumps differ.
type directionEdit struct {
	d          direction
	chains     []chainEdit
	had, has   bool // some interface isolates d in old, in cur
	jumps      bool
	anyChanged bool
}

func (de directionEdit) changes() bool { return de.jumps || de.anyChanged }

// edits pairs the chains of d in old and cur.
func edits(d direction, old, cur []compile.Ruleset) directionEdit {
	of := func(r compile.Ruleset) *compile.Direction {
		if d.name == ingress.name {
			return r.Ingress
		}
		return r.Egress
	}
	de := directionEdit{d: d}
	var oldJumps, curJumps []string
	inCur := map[string]bool{}
	for _, r := range cur {
		inCur[r.IfName] = true
		e := chainEdit{ifName: r.IfName, cur: of(r)}
		if i := slices.IndexFunc(old, func(o compile.Ruleset) bool { return o.IfName == r.IfName }); i >= 0 {
			e.old = of(old[i])
		}
		de.chains = append(de.chains, e)
		if e.cur != nil {
			curJumps = append(curJumps, r.IfName)
		}
	}
	for _, r := range old {
		if of(r) != nil {
			oldJumps = append(oldJumps, r.IfName)
		}
		if !inCur[r.IfName] {
			de.chains = append(de.chains, chainEdit{ifName: r.IfName, old: of(r)})
		}
	}
	for _, e := range de.chains {
		de.anyChanged = de.anyChanged || !sameDirection(e.old, e.cur)
	}
	de.had, de.has = len(oldJumps) > 0, len(curJumps) > 0
	de.jumps = !slices.Equal(oldJumps, curJumps)
	return de
}

// updateDirection queues the changes of one direction. A base chain left without jumps
// goes, as Program would not make it; one whose jumps change is flushed first and its
// jumps added last, once the chains they go to exist.
func (b *batch) updateDirection(de directionEdit, o Options) error {
	if !de.changes() {
		return nil
	}
	d := de.d
	base := &nftables.Chain{
		Name: d.base, Table: b.table, Type: nftables.ChainTypeFilter,
		Hooknum: d.hook, Priority: nftables.ChainPriorityFilter, Policy: policyAccept(),
	}
	if de.jumps {
		switch {
		case !de.has:
			b.c.DelChain(base)
		case !de.had:
			b.c.AddChain(base)
		default:
			b.c.FlushChain(base)
		}
	}
	for _, e := range de.chains {
		if err := b.editChain(d, e, o); err != nil {
			return fmt.Errorf("interface %s %s: %w", e.ifName, d.name, err)
		}
	}
	if de.jumps {
		for _, e := range de.chains {
			if e.cur != nil {
				b.rule(base, ifNameIs(d.ifKey, e.ifName), jump(d.prefix+e.ifName))
			}
		}
	}
	return nil
}

// editChain queues what makes one interface's chain of d e.cur.
func (b *batch) editChain(d direction, e chainEdit, o Options) error {
	ch := &nftables.Chain{Name: d.prefix + e.ifName, Table: b.table}
	switch {
	case sameDirection(e.old, e.cur):
		return nil
	case e.old == nil:
		b.c.AddChain(ch)
		return b.chain(ch, d, e.cur, o)
	}
	oldShape, oldSets, err := shapeOf(ch.Name, e.old)
	if err != nil {
		return err
	}
	if e.cur == nil {
		b.c.DelChain(ch) // its rules go with it, and with them the uses of its sets
		b.delSets(oldSets, nil)
		return nil
	}
	curShape, curSets, err := shapeOf(ch.Name, e.cur)
	if err != nil {
		return err
	}
	if slices.Equal(oldShape, curShape) {
		// The same rules; only the addresses of some sets differ.
		for name, fam := range curSets {
			if err := b.updateElements(name, fam, oldSets[name].ranges); err != nil {
				return err
			}
		}
		return nil
	}
	b.c.FlushChain(ch)
	b.delSets(oldSets, curSets)
	b.kept = oldSets
	defer func() { b.kept = nil }()
	return b.chain(ch, d, e.cur, o)
}

// delSets queues the deletion of the sets of old that cur has not.
func (b *batch) delSets(old, cur map[string]family) {
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if _, ok := cur[name]; !ok {
			b.c.DelSet(&nftables.Set{Table: b.table, Name: name})
		}
	}
}

// updateElements queues what makes the set name hold fam's ranges rather than old's: the
// ranges only old has deleted, then those only fam has added. Whole ranges, never a lone
// end, keep the set's intervals well formed at every step, as the kernel checks them.
func (b *batch) updateElements(name string, fam family, old []addrRange) error {
	gone := slices.DeleteFunc(slices.Clone(old), func(r addrRange) bool { return slices.Contains(fam.ranges, r) })
	added := slices.DeleteFunc(slices.Clone(fam.ranges), func(r addrRange) bool { return slices.Contains(old, r) })
	s := &nftables.Set{Table: b.table, Name: name, KeyType: fam.key, Interval: true}
	if len(gone) > 0 {
		if err := b.c.SetDeleteElements(s, intervalElements(gone)); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	if len(added) > 0 {
		if err := b.c.SetAddElements(s, intervalElements(added)); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}

// shapeOf describes the rules the chain ch gets for dir, with each set standing for its
// name, and returns the sets' addresses: two directions of the same shape differ only in
// the elements of their sets.
func shapeOf(ch string, dir *compile.Direction) ([]string, map[string]family, error) {
	shape := make([]string, 0, len(dir.Allow))
	sets := map[string]family{}
	for i, a := range dir.Allow {
		var sb strings.Builder
		fmt.Fprintf(&sb, "any=%t ports=%v", a.Any, a.Ports)
		if !a.Any {
			v4, v6, err := splitFamilies(a.Addrs)
			if err != nil {
				return nil, nil, fmt.Errorf("allow %d: %w", i, err)
			}
			for _, fam := range []family{{ipv4, v4}, {ipv6, v6}} {
				switch name := setName(ch, i, fam); len(fam.ranges) {
				case 0:
				case 1:
					fmt.Fprintf(&sb, " %s=%v", fam.name, fam.ranges[0])
				default:
					fmt.Fprintf(&sb, " %s=set", fam.name)
					sets[name] = fam
				}
			}
		}
		shape = append(shape, sb.String())
	}
	return shape, sets, nil
}

// setName names the set of the i-th allow of chain ch for fam's addresses: by position,
// so that the set of the same allow in the next rules is found again.
func setName(ch string, i int, fam family) string { return fmt.Sprintf("%s-%d-%s", ch, i, fam.name) }

// sameDirection tells whether a and b make the same rules.
func sameDirection(a, b *compile.Direction) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.EqualFunc(a.Allow, b.Allow, func(x, y compile.Allow) bool {
		return x.Any == y.Any && slices.Equal(x.Addrs, y.Addrs) && slices.Equal(x.Ports, y.Ports)
	})
}
