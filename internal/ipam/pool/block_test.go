package pool

import (
	"math"
	"net/netip"
	"testing"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestBlockOf(t *testing.T) {
	for _, tc := range []struct {
		a    string
		bits int
		want string
	}{
		{"10.1.0.77", 26, "10.1.0.64/26"},
		{"10.1.0.77", 32, "10.1.0.77/32"},
		{"fd00::7f", 122, "fd00::40/122"},
		{"fd00::1:2:3", 64, "fd00::/64"},
	} {
		if got := BlockOf(addr(tc.a), tc.bits); got != pfx(tc.want) {
			t.Errorf("BlockOf(%s, %d) = %v, want %s", tc.a, tc.bits, got, tc.want)
		}
	}
	if got := BlockOf(addr("10.1.0.1"), 33); got.IsValid() {
		t.Errorf("BlockOf with bits beyond the family = %v, want the zero Prefix", got)
	}
}

func TestUsableSkipsGatewayExcludeNetworkBroadcast(t *testing.T) {
	v4 := rng("10.1.0.0/24", "10.1.0.0", "10.1.0.255", "10.1.0.1", "10.1.0.128/30")
	v6 := rng("fd00::/120", "fd00::", "fd00::ff", "fd00::1")
	p2p := rng("10.2.0.0/31", "10.2.0.0", "10.2.0.1", "")
	narrow := rng("10.3.0.0/24", "10.3.0.10", "10.3.0.20", "")
	for _, tc := range []struct {
		name string
		r    Range
		a    string
		want bool
	}{
		{"network address, though range_start says it", v4, "10.1.0.0", false},
		{"gateway", v4, "10.1.0.1", false},
		{"first address after the gateway", v4, "10.1.0.2", true},
		{"excluded", v4, "10.1.0.129", false},
		{"first after the exclude", v4, "10.1.0.132", true},
		{"broadcast, though range_end says it", v4, "10.1.0.255", false},
		{"last before broadcast", v4, "10.1.0.254", true},
		{"outside the subnet", v4, "10.1.1.1", false},
		{"other family", v4, "fd00::2", false},
		{"IPv6 subnet-router anycast", v6, "fd00::", false},
		{"IPv6 gateway", v6, "fd00::1", false},
		{"IPv6 last address (no broadcast)", v6, "fd00::ff", true},
		{"/31: first address", p2p, "10.2.0.0", true},
		{"/31: second address", p2p, "10.2.0.1", true},
		{"before range_start", narrow, "10.3.0.9", false},
		{"range_start", narrow, "10.3.0.10", true},
		{"range_end", narrow, "10.3.0.20", true},
		{"after range_end", narrow, "10.3.0.21", false},
		{"zero address", narrow, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a netip.Addr
			if tc.a != "" {
				a = addr(tc.a)
			}
			if got := tc.r.Usable(a); got != tc.want {
				t.Errorf("Usable(%s) = %v, want %v", tc.a, got, tc.want)
			}
		})
	}
}

// walk lists the blocks of r from FirstBlock by NextBlock, at most max of them.
func walk(r Range, max int) []netip.Prefix {
	var out []netip.Prefix
	for b, ok := r.FirstBlock(), r.FirstBlock().IsValid(); ok && len(out) < max; b, ok = r.NextBlock(b) {
		out = append(out, b)
	}
	return out
}

func TestBlocksSkipThoseWithoutUsableAddress(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Range
		want []string
	}{
		{"every block of a /24", withBits(rng("10.1.0.0/24", "10.1.0.1", "10.1.0.254", ""), 26),
			[]string{"10.1.0.0/26", "10.1.0.64/26", "10.1.0.128/26", "10.1.0.192/26"}},
		{"a wholly excluded block is skipped", withBits(rng("10.1.0.0/24", "10.1.0.1", "10.1.0.254", "", "10.1.0.64/26"), 26),
			[]string{"10.1.0.0/26", "10.1.0.128/26", "10.1.0.192/26"}},
		{"excludes that together cover a block", withBits(rng("10.1.0.0/24", "10.1.0.1", "10.1.0.254", "", "10.1.0.64/27", "10.1.0.96/27"), 26),
			[]string{"10.1.0.0/26", "10.1.0.128/26", "10.1.0.192/26"}},
		{"only the blocks Start..End touch", withBits(rng("10.1.0.0/24", "10.1.0.70", "10.1.0.130", ""), 26),
			[]string{"10.1.0.64/26", "10.1.0.128/26"}},
		{"a block holding only the gateway is skipped", withBits(rng("10.1.0.0/24", "10.1.0.1", "10.1.0.130", "10.1.0.130", "10.1.0.128/31"), 26),
			[]string{"10.1.0.0/26", "10.1.0.64/26"}},
		{"a /28 range in one /26 block", withBits(rng("10.1.0.16/28", "10.1.0.17", "10.1.0.30", ""), 26),
			[]string{"10.1.0.0/26"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := walk(tc.r, 100)
			if len(got) != len(tc.want) {
				t.Fatalf("blocks %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != pfx(tc.want[i]) {
					t.Errorf("blocks %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func withBits(r Range, bits int) Range {
	r.BlockBits = bits
	return r
}

func TestBlocksOfHugeIPv6Range(t *testing.T) {
	// A /64 has 2^58 blocks of /122; the first 2^40 addresses are excluded and the walk
	// must jump past them, not step through them.
	r := withBits(rng("fd00::/64", "fd00::1", "fd00::ffff:ffff:ffff:ffff", "", "fd00::/88"), 122)
	got := walk(r, 3)
	want := []string{"fd00::100:0:0/122", "fd00::100:0:40/122", "fd00::100:0:80/122"}
	for i := range want {
		if i >= len(got) || got[i] != pfx(want[i]) {
			t.Fatalf("blocks %v, want %v", got, want)
		}
	}
	last := pfx("fd00::ffff:ffff:ffff:ffc0/122")
	if _, ok := r.NextBlock(last); ok {
		t.Errorf("NextBlock after the last block reported one")
	}
	if n := r.UsableIn(pfx("fd00::/64")); n != math.MaxInt32 {
		t.Errorf("UsableIn of the whole /64 = %d, want it capped at MaxInt32", n)
	}
	if n := r.UsableIn(pfx("fd00::/90")); n != 0 {
		t.Errorf("UsableIn of an excluded /90 = %d, want 0", n)
	}
	if b := r.BlockAt(math.MaxUint64); b.Bits() != 122 || r.UsableIn(b) != 64 {
		t.Errorf("BlockAt(max) = %v holding %d usable", b, r.UsableIn(b))
	}
	huge := withBits(rng("fd00::/8", "fd00::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""), 122)
	if b := huge.BlockAt(5); b != pfx("fd00::140/122") {
		t.Errorf("BlockAt(5) of 2^114 blocks = %v, want the block numbered 5", b)
	}
}

func TestBlockAtSpreadsAndLandsOnUsable(t *testing.T) {
	r := withBits(rng("10.1.0.0/24", "10.1.0.1", "10.1.0.254", "", "10.1.0.64/26"), 26)
	for _, tc := range []struct {
		seed uint64
		want string
	}{
		{0, "10.1.0.0/26"},
		{1, "10.1.0.128/26"}, // block 1 is excluded: the next that is not
		{2, "10.1.0.128/26"},
		{3, "10.1.0.192/26"},
		{4, "10.1.0.0/26"}, // modulo the 4 blocks
		{7, "10.1.0.192/26"},
	} {
		if got := r.BlockAt(tc.seed); got != pfx(tc.want) {
			t.Errorf("BlockAt(%d) = %v, want %s", tc.seed, got, tc.want)
		}
	}
	tail := withBits(rng("10.1.0.0/24", "10.1.0.1", "10.1.0.254", "", "10.1.0.192/26"), 26)
	if got := tail.BlockAt(3); got != pfx("10.1.0.0/26") {
		t.Errorf("BlockAt of an excluded last block = %v, want a wrap to the first", got)
	}
}

func TestFreeInTakesLowestFreeUsable(t *testing.T) {
	r := withBits(rng("10.1.0.0/24", "10.1.0.1", "10.1.0.254", "10.1.0.1", "10.1.0.4/30"), 26)
	takenSet := func(ss ...string) func(netip.Addr) bool {
		m := map[netip.Addr]bool{}
		for _, s := range ss {
			m[addr(s)] = true
		}
		return func(a netip.Addr) bool { return m[a] }
	}
	for _, tc := range []struct {
		name  string
		block string
		taken func(netip.Addr) bool
		want  string // "" none
	}{
		{"nothing taken: after network and gateway", "10.1.0.0/26", nil, "10.1.0.2"},
		{"taken ones and the exclude skipped", "10.1.0.0/26", takenSet("10.1.0.2", "10.1.0.3"), "10.1.0.8"},
		{"last block stops before broadcast", "10.1.0.192/26", takenSet("10.1.0.192"), "10.1.0.193"},
		{"a block outside the range", "10.1.1.0/26", nil, ""},
		{"a block of the other family", "fd00::/122", nil, ""},
		{"all taken", "10.1.0.192/26", func(netip.Addr) bool { return true }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := r.FreeIn(pfx(tc.block), tc.taken)
			if tc.want == "" {
				if ok {
					t.Errorf("FreeIn = %v, want none", got)
				}
				return
			}
			if !ok || got != addr(tc.want) {
				t.Errorf("FreeIn = %v %v, want %s", got, ok, tc.want)
			}
		})
	}
}

func TestUsableInCountsForTheFreeColumn(t *testing.T) {
	r := withBits(rng("10.1.0.0/24", "10.1.0.1", "10.1.0.200", "10.1.0.1", "10.1.0.64/28", "10.1.0.64/27", "10.1.0.70/32"), 26)
	for _, tc := range []struct {
		block string
		want  int
	}{
		{"10.1.0.0/26", 62},   // 64 less network and gateway
		{"10.1.0.64/26", 32},  // 64 less the /27 (the /28 and the /32 inside it count once)
		{"10.1.0.128/26", 64}, // all
		{"10.1.0.192/26", 9},  // .192 to .200 (range_end)
		{"10.1.0.0/24", 62 + 32 + 64 + 9},
		{"10.1.0.0/16", 62 + 32 + 64 + 9},
		{"10.1.1.0/26", 0},
	} {
		if got := r.UsableIn(pfx(tc.block)); got != tc.want {
			t.Errorf("UsableIn(%s) = %d, want %d", tc.block, got, tc.want)
		}
	}
}

func TestRangeForRequestedAddress(t *testing.T) {
	c := Config{Ranges: []Range{
		rng("10.5.0.0/24", "10.5.0.10", "10.5.0.20", ""),
		rng("10.5.0.0/24", "10.5.0.100", "10.5.0.120", ""),
		rng("fd00::/64", "fd00::1", "fd00::ffff", ""),
	}}
	for _, tc := range []struct {
		a    string
		want int // index, -1 none
	}{
		{"10.5.0.15", 0},
		{"10.5.0.110", 1},
		{"10.5.0.50", 0}, // in no Start..End: the first whose subnet holds it
		{"fd00::1:0", 2},
		{"10.6.0.1", -1},
	} {
		r, ok := c.RangeFor(addr(tc.a))
		switch {
		case tc.want < 0 && ok:
			t.Errorf("RangeFor(%s) = %v, want none", tc.a, r)
		case tc.want >= 0 && (!ok || r.String() != c.Ranges[tc.want].String()):
			t.Errorf("RangeFor(%s) = %v %v, want %v", tc.a, r, ok, c.Ranges[tc.want])
		}
	}
}
