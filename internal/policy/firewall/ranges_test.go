package firewall

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/nftables"
)

func TestSplitFamiliesMergesRanges(t *testing.T) {
	r := func(first, last string) addrRange { return addrRange{addr(first), addr(last)} }
	for _, tc := range []struct {
		name     string
		prefixes []string
		v4, v6   []addrRange
	}{
		{name: "none"},
		{name: "one host", prefixes: []string{"10.0.0.1/32"}, v4: []addrRange{r("10.0.0.1", "10.0.0.1")}},
		{name: "unmasked", prefixes: []string{"10.0.0.77/24"}, v4: []addrRange{r("10.0.0.0", "10.0.0.255")}},
		{
			name:     "contained and overlapping",
			prefixes: []string{"10.1.0.0/16", "10.0.0.0/8", "10.2.3.0/24"},
			v4:       []addrRange{r("10.0.0.0", "10.255.255.255")},
		},
		{
			name:     "adjacent joined, gaps kept",
			prefixes: []string{"10.0.0.4/30", "10.0.0.0/30", "10.0.0.9/32"},
			v4:       []addrRange{r("10.0.0.0", "10.0.0.7"), r("10.0.0.9", "10.0.0.9")},
		},
		{
			name:     "both families",
			prefixes: []string{"fd00::/127", "192.168.0.0/16", "fd00::2/127"},
			v4:       []addrRange{r("192.168.0.0", "192.168.255.255")},
			v6:       []addrRange{r("fd00::", "fd00::3")},
		},
		{
			name:     "to the end of the space",
			prefixes: []string{"255.255.255.255/32", "0.0.0.0/0", "::/0", "ffff::/16"},
			v4:       []addrRange{r("0.0.0.0", "255.255.255.255")},
			v6:       []addrRange{r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v4, v6, err := splitFamilies(prefixes(tc.prefixes...))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(v4, tc.v4) || !slices.Equal(v6, tc.v6) {
				t.Errorf("got %v %v, want %v %v", v4, v6, tc.v4, tc.v6)
			}
		})
	}
	if _, _, err := splitFamilies([]netip.Prefix{{}}); err == nil {
		t.Error("an invalid prefix was accepted")
	}
}

func TestIntervalElements(t *testing.T) {
	got := intervalElements([]addrRange{
		{addr("10.0.0.0"), addr("10.0.0.7")},
		{addr("10.0.1.0"), addr("255.255.255.255")},
	})
	want := []nftables.SetElement{
		{Key: []byte{10, 0, 0, 0}},
		{Key: []byte{10, 0, 0, 8}, IntervalEnd: true},
		{Key: []byte{10, 0, 1, 0}}, // open to the end of the space: no end element
	}
	if len(got) != len(want) {
		t.Fatalf("got %d elements %+v, want %+v", len(got), got, want)
	}
	for i := range want {
		if string(got[i].Key) != string(want[i].Key) || got[i].IntervalEnd != want[i].IntervalEnd {
			t.Errorf("element %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// FuzzSplitFamilies checks that merged ranges are sorted, disjoint, not touching, and cover
// exactly the addresses of the prefixes.
func FuzzSplitFamilies(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 8, 10, 1, 0, 0, 16, 10, 0, 0, 9, 32})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ps []netip.Prefix
		for ; len(b) >= 5; b = b[5:] {
			a := netip.AddrFrom4([4]byte(b[:4]))
			ps = append(ps, netip.PrefixFrom(a, int(b[4])%33))
		}
		v4, _, err := splitFamilies(ps)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(v4); i++ {
			if next := v4[i-1].last.Next(); !next.IsValid() || v4[i].first.Compare(next) <= 0 {
				t.Fatalf("ranges %v and %v overlap or touch", v4[i-1], v4[i])
			}
		}
		in := func(a netip.Addr) bool {
			return slices.ContainsFunc(v4, func(r addrRange) bool { return r.first.Compare(a) <= 0 && a.Compare(r.last) <= 0 })
		}
		for _, p := range ps {
			r := prefixRange(p.Masked())
			for _, a := range []netip.Addr{r.first, r.last, r.first.Prev(), r.last.Next()} {
				want := a.IsValid() && slices.ContainsFunc(ps, func(q netip.Prefix) bool { return q.Contains(a) })
				if a.IsValid() && in(a) != want {
					t.Fatalf("%s: in ranges %v, in prefixes %v", a, in(a), want)
				}
			}
		}
	})
}

func TestDiffRanges(t *testing.T) {
	r := func(first, last string) addrRange { return addrRange{addr(first), addr(last)} }
	for _, c := range []struct {
		name         string
		a, b         []addrRange
		onlyA, onlyB []addrRange
	}{
		{"equal", []addrRange{r("10.0.0.1", "10.0.0.2")}, []addrRange{r("10.0.0.1", "10.0.0.2")}, nil, nil},
		{"one added", []addrRange{r("10.0.0.1", "10.0.0.1")}, []addrRange{r("10.0.0.1", "10.0.0.1"), r("10.0.0.9", "10.0.0.9")},
			nil, []addrRange{r("10.0.0.9", "10.0.0.9")}},
		{"one gone", []addrRange{r("10.0.0.1", "10.0.0.1"), r("10.0.0.5", "10.0.0.5"), r("10.0.0.9", "10.0.0.9")},
			[]addrRange{r("10.0.0.1", "10.0.0.1"), r("10.0.0.9", "10.0.0.9")}, []addrRange{r("10.0.0.5", "10.0.0.5")}, nil},
		{"grown: same first", []addrRange{r("10.0.0.1", "10.0.0.2")}, []addrRange{r("10.0.0.1", "10.0.0.3")},
			[]addrRange{r("10.0.0.1", "10.0.0.2")}, []addrRange{r("10.0.0.1", "10.0.0.3")}},
		{"from nothing", nil, []addrRange{r("fd00::1", "fd00::1")}, nil, []addrRange{r("fd00::1", "fd00::1")}},
	} {
		onlyA, onlyB := diffRanges(c.a, c.b)
		if !slices.Equal(onlyA, c.onlyA) || !slices.Equal(onlyB, c.onlyB) {
			t.Errorf("%s: diffRanges = %v, %v; want %v, %v", c.name, onlyA, onlyB, c.onlyA, c.onlyB)
		}
	}
}
