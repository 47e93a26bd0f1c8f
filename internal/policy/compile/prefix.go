package compile

import (
	"net/netip"
	"slices"
)

// subtract is cidr minus except: the fewest prefixes that cover exactly the addresses of
// cidr outside every except, sorted. Excepts of the other family are ignored.
func subtract(cidr netip.Prefix, except []netip.Prefix) []netip.Prefix {
	if !cidr.IsValid() {
		return nil
	}
	cidr = masked(cidr)
	var ex []netip.Prefix
	for _, e := range except {
		if e.IsValid() && e.Addr().Unmap().BitLen() == cidr.Addr().BitLen() {
			ex = append(ex, masked(e))
		}
	}
	return appendDifference(nil, cidr, ex)
}

// appendDifference appends p minus ex to out: p whole when no except overlaps it, nothing
// when one covers it, else the differences of its two halves.
func appendDifference(out []netip.Prefix, p netip.Prefix, ex []netip.Prefix) []netip.Prefix {
	overlap := false
	for _, e := range ex {
		if e.Bits() <= p.Bits() && e.Contains(p.Addr()) {
			return out
		}
		if e.Overlaps(p) {
			overlap = true
		}
	}
	if !overlap {
		return append(out, p)
	}
	lo, hi := halves(p)
	out = appendDifference(out, lo, ex)
	return appendDifference(out, hi, ex)
}

// halves are the two prefixes one bit longer that make up p (not a single address).
func halves(p netip.Prefix) (netip.Prefix, netip.Prefix) {
	bits := p.Bits() + 1
	return netip.PrefixFrom(p.Addr(), bits), netip.PrefixFrom(setBit(p.Addr(), p.Bits()), bits)
}

// setBit is a with bit i (0: the most significant) set.
func setBit(a netip.Addr, i int) netip.Addr {
	if a.Is4() {
		b := a.As4()
		b[i/8] |= 0x80 >> (i % 8)
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	b[i/8] |= 0x80 >> (i % 8)
	return netip.AddrFrom16(b)
}

// masked is p with its address unmapped and host bits cleared.
func masked(p netip.Prefix) netip.Prefix {
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() {
		a, bits = a.Unmap(), max(bits-96, 0)
	}
	return netip.PrefixFrom(a, bits).Masked()
}

// normalizePrefixes is the fewest prefixes covering exactly the addresses of ps, masked
// and sorted (IPv4 first, then by address); nil when ps is empty.
func normalizePrefixes(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	sorted := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if p.IsValid() {
			sorted = append(sorted, masked(p))
		}
	}
	slices.SortFunc(sorted, comparePrefix)
	return compact(sorted)
}

// unionPrefixes is normalizePrefixes of the union of runs, each of them normalized.
func unionPrefixes(runs [][]netip.Prefix) []netip.Prefix {
	switch len(runs) {
	case 0:
		return nil
	case 1:
		return slices.Clone(runs[0])
	}
	for len(runs) > 1 {
		var next [][]netip.Prefix
		for i := 0; i+1 < len(runs); i += 2 {
			next = append(next, mergeSorted(runs[i], runs[i+1]))
		}
		if len(runs)%2 == 1 {
			next = append(next, runs[len(runs)-1])
		}
		runs = next
	}
	return compact(runs[0])
}

// mergeSorted is the sorted merge of sorted a and b.
func mergeSorted(a, b []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if comparePrefix(a[0], b[0]) <= 0 {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// compact is the fewest prefixes covering exactly those of sorted (masked, sorted), in
// place: prefixes inside the one before dropped, halves merged into their parent.
func compact(sorted []netip.Prefix) []netip.Prefix {
	out := sorted[:0]
	for _, p := range sorted {
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue // inside the previous one (or equal to it)
		}
		out = append(out, p)
		out = mergeSiblings(out)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// mergeSiblings replaces the last two prefixes of out by their parent while they are its
// two halves.
func mergeSiblings(out []netip.Prefix) []netip.Prefix {
	for n := len(out); n >= 2; n = len(out) {
		a, b := out[n-2], out[n-1]
		if a.Bits() != b.Bits() || a.Bits() == 0 || a.Addr().BitLen() != b.Addr().BitLen() {
			break
		}
		parent := netip.PrefixFrom(a.Addr(), a.Bits()-1).Masked()
		if parent.Addr() != a.Addr() || !parent.Contains(b.Addr()) {
			break
		}
		out = append(out[:n-2], parent)
	}
	return out
}

// comparePrefix orders prefixes by address (IPv4 first), then the shorter first.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
