package firewall

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
)

// addrRange is an inclusive range of addresses of one family.
type addrRange struct {
	first, last netip.Addr
}

// splitFamilies turns prefixes into the sorted, merged address ranges of each family. Merging
// overlapping and adjacent prefixes keeps the elements of an interval set disjoint, as the
// kernel wants them.
func splitFamilies(prefixes []netip.Prefix) (v4, v6 []addrRange, err error) {
	for _, p := range prefixes {
		if !p.IsValid() {
			return nil, nil, fmt.Errorf("address prefix %q: not valid", p)
		}
		r := prefixRange(p.Masked())
		if r.first.Is4() {
			v4 = append(v4, r)
		} else {
			v6 = append(v6, r)
		}
	}
	return mergeRanges(v4), mergeRanges(v6), nil
}

// prefixRange is the first and the last address of p (masked).
func prefixRange(p netip.Prefix) addrRange {
	last := p.Addr().AsSlice()
	for i := p.Bits(); i < len(last)*8; i++ {
		last[i/8] |= 0x80 >> (i % 8)
	}
	l, _ := netip.AddrFromSlice(last)
	return addrRange{first: p.Addr(), last: l}
}

// mergeRanges sorts rs and joins those that overlap or touch.
func mergeRanges(rs []addrRange) []addrRange {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b addrRange) int { return a.first.Compare(b.first) })
	out := []addrRange{rs[0]}
	for _, r := range rs[1:] {
		cur := &out[len(out)-1]
		next := cur.last.Next() // invalid past the family's last address: cur covers the rest
		if next.IsValid() && r.first.Compare(next) > 0 {
			out = append(out, r)
			continue
		}
		if r.last.Compare(cur.last) > 0 {
			cur.last = r.last
		}
	}
	return out
}

// intervalElements is the elements of an interval set holding rs: each range's first
// address, and the address after its last flagged as the end (none at the family's end).
func intervalElements(rs []addrRange) []nftables.SetElement {
	elems := make([]nftables.SetElement, 0, 2*len(rs))
	for _, r := range rs {
		elems = append(elems, nftables.SetElement{Key: r.first.AsSlice()})
		if next := r.last.Next(); next.IsValid() {
			elems = append(elems, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
	}
	return elems
}
