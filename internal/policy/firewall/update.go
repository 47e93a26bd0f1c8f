package firewall

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/google/nftables"

	"github.com/multinet/multinet/internal/policy/compile"
)

// Update makes multinet's table in the network namespace at netnsPath exactly cur, as
// Program does, given old: the rules last programmed there with o. One atomic netlink
// transaction touches only what differs: a chain whose rules are unchanged is kept; a chain
// whose allows differ only in the addresses of their sets gets those sets' elements
// updated, rules untouched; a chain with as many allows as before has the rules of those
// that changed replaced in place (their handles read from the kernel); another changed
// chain is flushed and filled again; the jumps of a base chain are redone only when its
// interfaces change. The table ends up as Program would make it, rule for rule. The same
// rules in cur as in old send nothing at all. When the table appears or goes, and when the
// kernel refuses the edit (old is not what it has), Program replaces the whole table.
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
	if e.cur != nil {
		changes, ok, err := elementChanges(ch.Name, e.old, e.cur)
		if err != nil {
			return err
		}
		if ok { // the same rules; only the addresses of some sets differ
			for _, sc := range changes {
				if err := b.updateElements(sc.name, sc.cur, sc.old); err != nil {
					return err
				}
			}
			return nil
		}
	}
	oldSets, err := setsOf(ch.Name, e.old)
	if err != nil {
		return err
	}
	if e.cur == nil {
		b.c.DelChain(ch) // its rules go with it, and with them the uses of its sets
		b.delSets(oldSets, nil)
		return nil
	}
	curSets, err := setsOf(ch.Name, e.cur)
	if err != nil {
		return err
	}
	b.kept = oldSets
	defer func() { b.kept = nil }()
	if ok, err := b.editRules(ch, d, e, o, oldSets, curSets); ok || err != nil {
		return err
	}
	b.c.FlushChain(ch)
	b.delSets(oldSets, curSets)
	return b.chain(ch, d, e.cur, o)
}

// editRules queues, for a chain with as many allows in cur as in old, the deletion of the
// rules of the allows that changed and the insertion of their new rules where those were,
// reading the chain's rules for their handles: the rules of the other allows stay. ok is
// false, nothing queued, when the chain does not hold the rules old makes.
func (b *batch) editRules(ch *nftables.Chain, d direction, e chainEdit, o Options, oldSets, curSets map[string]family) (bool, error) {
	n := len(e.cur.Allow)
	if len(e.old.Allow) != n {
		return false, nil
	}
	// start[i] is the index of the first rule of the i-th allow; start[n], the drop's.
	start := make([]int, n+1)
	start[0] = 1 + len(alwaysPass(d, o))
	for i, a := range e.old.Allow {
		count, err := ruleCount(a)
		if err != nil {
			return false, err
		}
		start[i+1] = start[i] + count
	}
	rules, err := b.c.GetRules(b.table, ch)
	if err != nil || len(rules) != start[n]+1 {
		return false, nil // the refill's transaction finds out what is wrong
	}
	changed := func(i int) bool { return !sameAllow(e.old.Allow[i], e.cur.Allow[i]) }
	for i := range n {
		if !changed(i) {
			continue
		}
		for _, r := range rules[start[i]:start[i+1]] {
			if err := b.c.DelRule(r); err != nil {
				return false, err
			}
		}
	}
	b.delSets(oldSets, curSets)
	defer func() { b.before = 0 }()
	for i := range n {
		if !changed(i) {
			continue
		}
		// Before the first rule that stays after the allow's old ones: the drop at last.
		next := i + 1
		for next < n && (changed(next) || start[next] == start[next+1]) {
			next++
		}
		b.before = rules[start[next]].Handle
		if err := b.allow(ch, d, i, e.cur.Allow[i]); err != nil {
			return false, fmt.Errorf("allow %d: %w", i, err)
		}
	}
	return true, nil
}

// ruleCount is how many rules allow gets: one a port range and address family.
func ruleCount(a compile.Allow) (int, error) {
	ports := max(len(a.Ports), 1)
	if a.Any {
		return ports, nil
	}
	v4, v6, err := splitFamilies(a.Addrs)
	if err != nil {
		return 0, err
	}
	families := 0
	for _, f := range [][]addrRange{v4, v6} {
		if len(f) > 0 {
			families++
		}
	}
	return families * ports, nil
}

// delSets queues the deletion of the sets of old that cur has not.
func (b *batch) delSets(old, cur map[string]family) {
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if _, ok := cur[name]; !ok {
			b.c.DelSet(&nftables.Set{Table: b.table, Name: name})
		}
	}
}

// setChange is a set whose elements change: from old's ranges to cur's.
type setChange struct {
	name string
	cur  family
	old  []addrRange
}

// elementChanges tells whether old and cur make the same rules, their sets aside (ok),
// and if so which sets change. Allows of the same addresses are not looked into.
func elementChanges(ch string, old, cur *compile.Direction) (changes []setChange, ok bool, err error) {
	if len(old.Allow) != len(cur.Allow) {
		return nil, false, nil
	}
	for i, a := range cur.Allow {
		was := old.Allow[i]
		if a.Any != was.Any || !slices.Equal(a.Ports, was.Ports) {
			return nil, false, nil
		}
		if a.Any || slices.Equal(a.Addrs, was.Addrs) {
			continue
		}
		v4, v6, err := splitFamilies(a.Addrs)
		if err != nil {
			return nil, false, fmt.Errorf("allow %d: %w", i, err)
		}
		wasV4, wasV6, err := splitFamilies(was.Addrs)
		if err != nil {
			return nil, false, fmt.Errorf("allow %d: %w", i, err)
		}
		for _, f := range []struct {
			cur family
			old []addrRange
		}{{family{ipv4, v4}, wasV4}, {family{ipv6, v6}, wasV6}} {
			switch {
			case slices.Equal(f.cur.ranges, f.old):
			case len(f.cur.ranges) < 2 || len(f.old) < 2:
				return nil, false, nil // a set in one, a comparison (or nothing) in the other
			default:
				changes = append(changes, setChange{name: setName(ch, i, f.cur), cur: f.cur, old: f.old})
			}
		}
	}
	return changes, true, nil
}

// updateElements queues what makes the set name hold fam's ranges rather than old's: the
// ranges only old has deleted, then those only fam has added. Whole ranges, never a lone
// end, keep the set's intervals well formed at every step, as the kernel checks them.
func (b *batch) updateElements(name string, fam family, old []addrRange) error {
	gone, added := diffRanges(old, fam.ranges)
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

// diffRanges is the ranges only in a and those only in b, both sorted by first address.
func diffRanges(a, b []addrRange) (onlyA, onlyB []addrRange) {
	for len(a) > 0 && len(b) > 0 {
		switch c := cmp.Or(a[0].first.Compare(b[0].first), a[0].last.Compare(b[0].last)); {
		case c == 0:
			a, b = a[1:], b[1:]
		case c < 0:
			onlyA, a = append(onlyA, a[0]), a[1:]
		default:
			onlyB, b = append(onlyB, b[0]), b[1:]
		}
	}
	return append(onlyA, a...), append(onlyB, b...)
}

// setsOf is the sets the chain ch has for dir, by name.
func setsOf(ch string, dir *compile.Direction) (map[string]family, error) {
	sets := map[string]family{}
	for i, a := range dir.Allow {
		if a.Any {
			continue
		}
		v4, v6, err := splitFamilies(a.Addrs)
		if err != nil {
			return nil, fmt.Errorf("allow %d: %w", i, err)
		}
		for _, fam := range []family{{ipv4, v4}, {ipv6, v6}} {
			if len(fam.ranges) > 1 {
				sets[setName(ch, i, fam)] = fam
			}
		}
	}
	return sets, nil
}

// setName names the set of the i-th allow of chain ch for fam's addresses: by position,
// so that the set of the same allow in the next rules is found again.
func setName(ch string, i int, fam family) string { return fmt.Sprintf("%s-%d-%s", ch, i, fam.name) }

// sameDirection tells whether a and b make the same rules.
func sameDirection(a, b *compile.Direction) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.EqualFunc(a.Allow, b.Allow, sameAllow)
}

func sameAllow(a, b compile.Allow) bool {
	return a.Any == b.Any && slices.Equal(a.Addrs, b.Addrs) && slices.Equal(a.Ports, b.Ports)
}
