package compile

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/multinet/multinet/internal/policy/spec"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestSubtract(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cidr   string
		except []string
		want   []string
	}{
		{"no except", "10.0.0.0/8", nil, []string{"10.0.0.0/8"}},
		{"except the whole cidr", "10.0.0.0/8", []string{"10.0.0.0/8"}, nil},
		{"except wider than the cidr", "10.1.0.0/16", []string{"10.0.0.0/8"}, nil},
		{"except at the low edge", "10.0.0.0/30", []string{"10.0.0.0/32"},
			[]string{"10.0.0.1/32", "10.0.0.2/31"}},
		{"except at the high edge", "10.0.0.0/30", []string{"10.0.0.3/32"},
			[]string{"10.0.0.0/31", "10.0.0.2/32"}},
		{"except a half", "10.0.0.0/24", []string{"10.0.0.128/25"}, []string{"10.0.0.0/25"}},
		{"nested excepts", "10.0.0.0/24", []string{"10.0.0.0/25", "10.0.0.0/26"},
			[]string{"10.0.0.128/25"}},
		{"two excepts, both halves", "10.0.0.0/24", []string{"10.0.0.0/25", "10.0.0.128/25"}, nil},
		{"except in the middle", "192.168.0.0/29", []string{"192.168.0.4/31"},
			[]string{"192.168.0.0/30", "192.168.0.6/31"}},
		{"everything but one address", "0.0.0.0/0", []string{"255.255.255.255/32"}, []string{
			"0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/4", "240.0.0.0/5", "248.0.0.0/6",
			"252.0.0.0/7", "254.0.0.0/8", "255.0.0.0/9", "255.128.0.0/10", "255.192.0.0/11",
			"255.224.0.0/12", "255.240.0.0/13", "255.248.0.0/14", "255.252.0.0/15", "255.254.0.0/16",
			"255.255.0.0/17", "255.255.128.0/18", "255.255.192.0/19", "255.255.224.0/20",
			"255.255.240.0/21", "255.255.248.0/22", "255.255.252.0/23", "255.255.254.0/24",
			"255.255.255.0/25", "255.255.255.128/26", "255.255.255.192/27", "255.255.255.224/28",
			"255.255.255.240/29", "255.255.255.248/30", "255.255.255.252/31", "255.255.255.254/32"}},
		{"single address cidr", "10.0.0.1/32", []string{"10.0.0.1/32"}, nil},
		{"except outside the cidr", "10.0.0.0/24", []string{"10.0.1.0/24"}, []string{"10.0.0.0/24"}},
		{"except of the other family", "10.0.0.0/24", []string{"::/0"}, []string{"10.0.0.0/24"}},
		{"unmasked input", "10.0.0.7/24", []string{"10.0.0.200/25"}, []string{"10.0.0.0/25"}},
		{"v6 except at the low edge", "fd00::/126", []string{"fd00::/128"},
			[]string{"fd00::1/128", "fd00::2/127"}},
		{"v6 except at the high edge", "fd00::/64", []string{"fd00::8000:0:0:0/65"}, []string{"fd00::/65"}},
		{"v6 whole space minus a /1", "::/0", []string{"8000::/1"}, []string{"::/1"}},
		{"v6 nested", "2001:db8::/32", []string{"2001:db8::/34", "2001:db8:4000::/34", "2001:db8::/48"},
			[]string{"2001:db8:8000::/33"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := subtract(netip.MustParsePrefix(tc.cidr), prefixes(tc.except...))
			if !slices.Equal(got, prefixes(tc.want...)) {
				t.Errorf("subtract(%s, %v) = %v, want %v", tc.cidr, tc.except, got, tc.want)
			}
		})
	}
}

func TestNormalizePrefixes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"empty", nil, nil},
		{"masked and sorted, v4 first", []string{"fd00::1/64", "10.0.0.9/24", "9.0.0.0/8"},
			[]string{"9.0.0.0/8", "10.0.0.0/24", "fd00::/64"}},
		{"duplicates", []string{"10.0.0.1/32", "10.0.0.1/32"}, []string{"10.0.0.1/32"}},
		{"contained", []string{"10.0.0.1/32", "10.0.0.0/8", "10.5.0.0/16"}, []string{"10.0.0.0/8"}},
		{"siblings merge up", []string{"10.0.0.0/32", "10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/30"},
			[]string{"10.0.0.0/29"}},
		{"adjacent, not siblings", []string{"10.0.0.1/32", "10.0.0.2/32"}, []string{"10.0.0.1/32", "10.0.0.2/32"}},
		{"halves of everything", []string{"128.0.0.0/1", "0.0.0.0/1"}, []string{"0.0.0.0/0"}},
		{"families never merge", []string{"0.0.0.0/0", "::/1", "8000::/1"}, []string{"0.0.0.0/0", "::/0"}},
		{"v4-mapped addresses are v4", []string{"::ffff:10.0.0.1/128"}, []string{"10.0.0.1/32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := normalizePrefixes(prefixes(tc.in...)); !slices.Equal(got, prefixes(tc.want...)) {
				t.Errorf("normalizePrefixes(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestNormalizePorts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in, want []PortRange
	}{
		{"none is every port", nil, nil},
		{"sorted by protocol then port", ports(pr(spec.UDP, 53, 53), pr(spec.TCP, 80, 80), pr(spec.TCP, 22, 22)),
			ports(pr(spec.TCP, 22, 22), pr(spec.TCP, 80, 80), pr(spec.UDP, 53, 53))},
		{"overlapping and adjacent join", ports(pr(spec.TCP, 10, 20), pr(spec.TCP, 15, 30), pr(spec.TCP, 31, 31)),
			ports(pr(spec.TCP, 10, 31))},
		{"not across protocols", ports(pr(spec.TCP, 10, 20), pr(spec.UDP, 21, 30)),
			ports(pr(spec.TCP, 10, 20), pr(spec.UDP, 21, 30))},
		{"every port swallows the rest", ports(pr(spec.TCP, 80, 80), pr(spec.TCP, 0, 0)), ports(pr(spec.TCP, 0, 0))},
		{"a full range is every port", ports(pr(spec.SCTP, 1, 65535)), ports(pr(spec.SCTP, 0, 0))},
		{"top of the range", ports(pr(spec.TCP, 65535, 65535), pr(spec.TCP, 65534, 65534)), ports(pr(spec.TCP, 65534, 65535))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := normalizePorts(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("normalizePorts(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// TestSubtractRandom checks subtract against address membership on random blocks.
func TestSubtractRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		checkSubtract(t, rng.Uint64(), rng.Uint64(), uint8(rng.Uint32()))
	}
}

func FuzzSubtract(f *testing.F) {
	f.Add(uint64(0x0a000000), uint64(0x0a000080), uint8(7))
	f.Add(uint64(0), uint64(0xffffffff), uint8(255))
	f.Fuzz(checkSubtract)
}

// checkSubtract builds a block (an IPv4 or IPv6 cidr and up to three excepts inside it)
// from the seeds, and checks that subtract's result is normalized and holds exactly the
// addresses of the cidr outside every except, on the cidr's edges, the excepts' edges and
// addresses around them.
func checkSubtract(t *testing.T, seed, other uint64, shape uint8) {
	v6 := shape&1 == 1
	cidr := seededPrefix(seed, v6, int(shape>>1)%9)
	var except []netip.Prefix
	for i := range int(shape>>5) % 4 {
		except = append(except, inside(cidr, other>>(16*i)))
	}
	got := subtract(cidr, except)
	if !slices.Equal(got, normalizePrefixes(got)) {
		t.Fatalf("subtract(%s, %v) = %v: not normalized", cidr, except, got)
	}
	b := &spec.Block{CIDR: cidr, Except: except}
	for _, a := range probes(append([]netip.Prefix{cidr}, except...)) {
		in := slices.ContainsFunc(got, func(p netip.Prefix) bool { return p.Contains(a) })
		if in != inBlock(b, a) {
			t.Fatalf("subtract(%s, %v) = %v: %s in it is %v", cidr, except, got, a, in)
		}
	}
}

// seededPrefix is a prefix of the last 16+bits bits (IPv4) or 112+bits bits (IPv6) of seed.
func seededPrefix(seed uint64, v6 bool, bits int) netip.Prefix {
	if !v6 {
		a := netip.AddrFrom4([4]byte{byte(seed >> 24), byte(seed >> 16), byte(seed >> 8), byte(seed)})
		return netip.PrefixFrom(a, min(16+bits, 32)).Masked()
	}
	var b [16]byte
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
	b[14], b[15] = byte(seed>>8), byte(seed)
	return netip.PrefixFrom(netip.AddrFrom16(b), min(112+bits, 128)).Masked()
}

// inside is a prefix inside p (at most 16 host bits, as seededPrefix makes), from seed: its
// host bits from the low 12 bits of seed, its length from the next 4.
func inside(p netip.Prefix, seed uint64) netip.Prefix {
	host := p.Addr().BitLen() - p.Bits()
	a := p.Addr()
	for i := range host {
		if seed>>(i%12)&1 == 1 {
			a = setBit(a, a.BitLen()-1-i)
		}
	}
	return netip.PrefixFrom(a, p.Bits()+int(seed>>12&15)%(host+1)).Masked()
}

// probes are the first and last addresses of ps and their neighbours.
func probes(ps []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, p := range ps {
		first := p.Masked().Addr()
		last := first
		for i := p.Bits(); i < first.BitLen(); i++ {
			last = setBit(last, i)
		}
		for _, a := range []netip.Addr{first, last, first.Prev(), last.Next(), first.Next(), last.Prev()} {
			if a.IsValid() {
				out = append(out, a)
			}
		}
	}
	return out
}

func TestUnionPrefixes(t *testing.T) {
	for _, tc := range []struct {
		name string
		runs [][]string
		want []string
	}{
		{"none", nil, nil},
		{"one run is kept", [][]string{{"10.0.0.0/24", "fd00::/64"}}, []string{"10.0.0.0/24", "fd00::/64"}},
		{"halves in two runs merge", [][]string{{"10.0.0.0/25"}, {"10.0.0.128/25"}}, []string{"10.0.0.0/24"}},
		{"a run inside another", [][]string{{"10.0.0.5/32", "10.0.1.0/24"}, {"10.0.0.0/24"}, {"10.0.1.7/32"}},
			[]string{"10.0.0.0/23"}},
		{"three runs interleaved", [][]string{{"10.0.0.0/32", "10.0.0.4/32"}, {"10.0.0.2/32"}, {"10.0.0.1/32", "10.0.0.3/32", "fd00::1/128"}},
			[]string{"10.0.0.0/30", "10.0.0.4/32", "fd00::1/128"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var runs [][]netip.Prefix
			for _, r := range tc.runs {
				runs = append(runs, prefixes(r...))
			}
			if got := unionPrefixes(runs); !slices.Equal(got, prefixes(tc.want...)) {
				t.Errorf("unionPrefixes(%v) = %v, want %v", tc.runs, got, tc.want)
			}
		})
	}
}
