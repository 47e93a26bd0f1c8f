package ipam

import (
	"net/netip"
	"slices"
	"time"
)

// ledger is the node's records: the addresses its interfaces use and those it holds for
// StatefulSet pods, indexed by pool and address, by interface and by pod. It keeps one
// invariant: an address of a pool has at most one record. Every change names the record it
// removes or replaces and happens only if that very record (same identity) is still there,
// so a stale or repeated release is a no-op, whoever looked at the records before. It does
// no I/O and takes no lock: the Manager holds mu around every call.
type ledger struct {
	recs   map[string]*record   // by pool and address (recKey)
	owners map[string][]*record // in use, by interface (owner)
	holds  map[string][]*record // held, by pool, pod and interface (holdKey); one pod may have several
}

func newLedger() ledger {
	return ledger{recs: map[string]*record{}, owners: map[string][]*record{}, holds: map[string][]*record{}}
}

func recKey(poolID string, a netip.Addr) string { return poolID + "|" + a.String() }

func holdKey(poolID, pod, ifname string) string { return poolID + "|" + pod + "|" + ifname }

// same reports whether x and y are one record: one address of one pool, given to one
// interface (or held for one pod) by one allocation.
func same(x, y *record) bool {
	return x.Pool == y.Pool && x.Addr == y.Addr && x.ContainerID == y.ContainerID && x.IfName == y.IfName &&
		x.Pod == y.Pod && x.UID == y.UID && x.HeldUntil.Equal(y.HeldUntil) && x.Created.Equal(y.Created)
}

// get is the record of the address, nil when it is free.
func (l *ledger) get(poolID string, a netip.Addr) *record { return l.recs[recKey(poolID, a)] }

// has reports whether r is the record of its address.
func (l *ledger) has(r *record) bool {
	cur := l.get(r.Pool, r.Addr)
	return cur != nil && same(cur, r)
}

// add records r; false when its address has a record already.
func (l *ledger) add(r *record) bool {
	k := recKey(r.Pool, r.Addr)
	if l.recs[k] != nil {
		return false
	}
	l.recs[k] = r
	if r.held() {
		h := holdKey(r.Pool, r.Pod, r.IfName)
		l.holds[h] = append(l.holds[h], r)
	} else {
		l.owners[r.owner()] = append(l.owners[r.owner()], r)
	}
	return true
}

// remove forgets r if it is still the record of its address.
func (l *ledger) remove(r *record) bool {
	k := recKey(r.Pool, r.Addr)
	cur := l.recs[k]
	if cur == nil || !same(cur, r) {
		return false
	}
	delete(l.recs, k)
	if cur.held() {
		h := holdKey(cur.Pool, cur.Pod, cur.IfName)
		l.holds[h] = slices.DeleteFunc(l.holds[h], func(x *record) bool { return x == cur })
		if len(l.holds[h]) == 0 {
			delete(l.holds, h)
		}
		return true
	}
	o := cur.owner()
	l.owners[o] = slices.DeleteFunc(l.owners[o], func(x *record) bool { return x == cur })
	if len(l.owners[o]) == 0 {
		delete(l.owners, o)
	}
	return true
}

// replace puts r (of the same address) in old's place if old is still the record of it.
func (l *ledger) replace(old, r *record) bool {
	if old.Pool != r.Pool || old.Addr != r.Addr || !l.remove(old) {
		return false
	}
	l.add(r)
	return true
}

// owned are the records of an interface (a copy).
func (l *ledger) owned(containerID, ifname string) []*record {
	return slices.Clone(l.owners[owner(containerID, ifname)])
}

// held are the holds of a pod's interface in a pool, newest first (a copy).
func (l *ledger) held(poolID, pod, ifname string) []*record {
	hs := slices.Clone(l.holds[holdKey(poolID, pod, ifname)])
	slices.SortFunc(hs, func(x, y *record) int { return y.HeldUntil.Compare(x.HeldUntil) })
	return hs
}

// expired are the holds whose time is up at now: every held record, not one per index key.
func (l *ledger) expired(now time.Time) []*record {
	var out []*record
	for _, r := range l.recs {
		if r.held() && now.After(r.HeldUntil) {
			out = append(out, r)
		}
	}
	return out
}

// inUse are the records of interfaces (not the holds).
func (l *ledger) inUse() []*record {
	var out []*record
	for _, rs := range l.owners {
		out = append(out, rs...)
	}
	return out
}
