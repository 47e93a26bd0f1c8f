package ipam

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestLedgerActsOnlyOnTheRecordItNames: every removal and replacement of the ledger is a
// compare-and-delete on the record's identity, so a stale or repeated release does nothing
// and an address never has two records.
func TestLedgerActsOnlyOnTheRecordItNames(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := netip.MustParseAddr("10.0.0.1")
	rec := func(cid string, created time.Time) *record {
		return &record{Pool: "p/v4", Block: "b", CIDR: "10.0.0.0/26", Addr: a, Bits: 24, Network: "n", Pod: "ns/pod",
			UID: "u", ContainerID: cid, IfName: "net1", Created: created}
	}
	hold := func(r *record, until time.Time) *record {
		h := *r
		h.ContainerID, h.HeldUntil = "", until
		return &h
	}
	old := rec("c1", t0)
	for _, tc := range []struct {
		name    string
		steps   func(l *ledger) []bool // each step's answer
		want    []bool
		owner   string // the interface that has a at the end ("" none)
		holds   int    // holds of ns/pod net1 at the end
		expired int    // holds expired an hour after t0
	}{
		{"release twice: the second does nothing", func(l *ledger) []bool {
			return []bool{l.add(old), l.remove(old), l.remove(old)}
		}, []bool{true, true, false}, "", 0, 0},
		{"a stale release leaves the address's new record alone", func(l *ledger) []bool {
			return []bool{l.add(old), l.remove(old), l.add(rec("c2", t0.Add(time.Second))), l.remove(old)}
		}, []bool{true, true, true, false}, "c2/net1", 0, 0},
		{"a copy of the record is the record", func(l *ledger) []bool {
			cp := *old
			return []bool{l.add(old), l.remove(&cp)}
		}, []bool{true, true}, "", 0, 0},
		{"same interface, same address, a later allocation: another record", func(l *ledger) []bool {
			return []bool{l.add(old), l.remove(rec("c1", t0.Add(time.Second)))}
		}, []bool{true, false}, "c1/net1", 0, 0},
		{"an address has one record", func(l *ledger) []bool {
			return []bool{l.add(old), l.add(rec("c2", t0))}
		}, []bool{true, false}, "c1/net1", 0, 0},
		{"a hold replaces its record once", func(l *ledger) []bool {
			h := hold(old, t0.Add(10*time.Minute))
			return []bool{l.add(old), l.replace(old, h), l.replace(old, hold(old, t0.Add(20*time.Minute)))}
		}, []bool{true, true, false}, "", 1, 1},
		{"a hold taken back is not expired by a stale expiry", func(l *ledger) []bool {
			h := hold(old, t0.Add(10*time.Minute))
			back := rec("c3", t0)
			return []bool{l.add(h), l.replace(h, back), l.remove(h)}
		}, []bool{true, true, false}, "c3/net1", 0, 0},
		{"a replacement of another address is refused", func(l *ledger) []bool {
			other := rec("c1", t0)
			other.Addr = netip.MustParseAddr("10.0.0.2")
			return []bool{l.add(old), l.replace(old, other)}
		}, []bool{true, false}, "c1/net1", 0, 0},
		{"two holds of one pod and interface are both kept and both expire", func(l *ledger) []bool {
			second := rec("c2", t0)
			second.Addr = netip.MustParseAddr("10.0.0.2")
			return []bool{l.add(hold(old, t0.Add(time.Minute))), l.add(hold(second, t0.Add(2*time.Minute)))}
		}, []bool{true, true}, "", 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLedger()
			if got := tc.steps(&l); !slices.Equal(got, tc.want) {
				t.Errorf("steps answered %v, want %v", got, tc.want)
			}
			owner := ""
			if r := l.get("p/v4", a); r != nil && !r.held() {
				owner = r.owner()
				if !slices.Contains(l.owned(r.ContainerID, r.IfName), r) {
					t.Errorf("%s has %s but its interface index does not", r.owner(), a)
				}
			}
			if owner != tc.owner {
				t.Errorf("%s is %q's, want %q's", a, owner, tc.owner)
			}
			if n := len(l.held("p/v4", "ns/pod", "net1")); n != tc.holds {
				t.Errorf("%d holds, want %d", n, tc.holds)
			}
			if n := len(l.expired(t0.Add(time.Hour))); n != tc.expired {
				t.Errorf("%d holds expired, want %d", n, tc.expired)
			}
			inUse := 0
			for _, rs := range l.owners {
				inUse += len(rs)
			}
			holds := 0
			for _, hs := range l.holds {
				holds += len(hs)
			}
			if inUse+holds != len(l.recs) {
				t.Errorf("indexes out of step: %d records, %d in use, %d held", len(l.recs), inUse, holds)
			}
		})
	}
}

// TestHeldNewestFirst: a pod that comes back gets its newest hold.
func TestHeldNewestFirst(t *testing.T) {
	l := newLedger()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, until := range []time.Duration{time.Minute, 3 * time.Minute, 2 * time.Minute} {
		l.add(&record{Pool: "p", Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), Pod: "ns/db-0", IfName: "net1",
			HeldUntil: t0.Add(until)})
	}
	hs := l.held("p", "ns/db-0", "net1")
	if len(hs) != 3 || hs[0].Addr.String() != "10.0.0.2" || hs[2].Addr.String() != "10.0.0.1" {
		t.Errorf("holds in order %v, want newest (10.0.0.2) first", hs)
	}
}

// TestRecordFileNames: an unreadable record's address and pool label come from its file name.
func TestRecordFileNames(t *testing.T) {
	s := store{dir: "/x"}
	for _, a := range []string{"10.1.2.3", "fd00::1", "fd00:1:2::a:b"} {
		p := s.path("storage/v4", netip.MustParseAddr(a))
		label, got, ok := nameOf(p[len("/x/"):])
		if !ok || got.String() != a || label+"_" != p[len("/x/"):len("/x/")+len(label)+1] {
			t.Errorf("%s: read back %q %s %v", p, label, got, ok)
		}
	}
	for _, bad := range []string{"nolabel.json", "_10.0.0.1.json", "abc_notanaddress.json"} {
		if _, _, ok := nameOf(bad); ok {
			t.Errorf("%s read as a record's name", bad)
		}
	}
}
