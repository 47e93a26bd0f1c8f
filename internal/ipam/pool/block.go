package pool

import (
	"math"
	"net/netip"
)

// BlockOf is the block of prefix length bits that holds a (zone dropped). It is the zero
// Prefix when a is not valid or bits does not fit a's family.
func BlockOf(a netip.Addr, bits int) netip.Prefix {
	return netip.PrefixFrom(a, bits).Masked()
}

// Contains reports whether a is in the range's subnet (not necessarily usable).
func (r Range) Contains(a netip.Addr) bool { return r.Subnet.Contains(a) }

// Usable reports whether a may be handed out: within Start..End, in none of Exclude, not the
// gateway, and not the subnet's network address (subnet-router anycast for IPv6) nor, for
// IPv4, its broadcast address. Subnets of two addresses or one (/31 and /32, /127 and /128)
// have neither: every address of theirs is usable.
func (r Range) Usable(a netip.Addr) bool {
	if !r.Contains(a) {
		return false
	}
	n := num(a)
	if n.less(num(r.Start)) || num(r.End).less(n) {
		return false
	}
	for _, h := range r.holes() {
		if !n.less(h.lo) && !h.hi.less(n) {
			return false
		}
	}
	return true
}

// FirstBlock is the lowest block (of BlockBits) that holds a usable address; the zero Prefix
// when the range has none (Parse rejects such ranges).
func (r Range) FirstBlock() netip.Prefix {
	u, ok := r.firstUsable(num(r.Start))
	if !ok {
		return netip.Prefix{}
	}
	return BlockOf(u.addr(r.is4()), r.BlockBits)
}

// NextBlock is the lowest block above b that holds a usable address; false when there is none.
// Blocks without one (wholly excluded, say) are skipped by jumping past the exclusions, so a
// huge range costs no more than a small one.
func (r Range) NextBlock(b netip.Prefix) (netip.Prefix, bool) {
	if !b.IsValid() || b.Addr().Is4() != r.is4() {
		return netip.Prefix{}, false
	}
	last := spanOf(b).hi
	if !last.less(num(r.End)) {
		return netip.Prefix{}, false
	}
	u, ok := r.firstUsable(last.next())
	if !ok {
		return netip.Prefix{}, false
	}
	return BlockOf(u.addr(r.is4()), r.BlockBits), true
}

// BlockAt is a block of the range chosen by seed, so that nodes start claiming in different
// places: of the blocks spanning Start..End, the one numbered seed modulo their count (when
// there are more than 2^64, seed itself). If that block holds no usable address, BlockAt
// returns the next one that does, wrapping around to FirstBlock: its result always holds a
// usable address when the range does, and callers go on from it with NextBlock.
func (r Range) BlockAt(seed uint64) netip.Prefix {
	hostBits := r.Subnet.Addr().BitLen() - r.BlockBits
	if !r.Start.IsValid() || !r.End.IsValid() || hostBits < 0 || r.BlockBits < 0 {
		return netip.Prefix{}
	}
	first := num(BlockOf(r.Start, r.BlockBits).Addr())
	count := num(BlockOf(r.End, r.BlockBits).Addr()).sub(first).rsh(hostBits).next()
	idx := u128{lo: seed}
	if count.hi == 0 {
		idx.lo = seed % count.lo
	}
	b := netip.PrefixFrom(first.add(idx.lsh(hostBits)).addr(r.is4()), r.BlockBits)
	if r.UsableIn(b) > 0 {
		return b
	}
	if next, ok := r.NextBlock(b); ok {
		return next
	}
	return r.FirstBlock()
}

// FreeIn is the lowest usable address of block (within the range) that taken reports free
// (a nil taken: none is taken); false when there is none. It asks taken about each usable
// address in turn.
func (r Range) FreeIn(block netip.Prefix, taken func(netip.Addr) bool) (netip.Addr, bool) {
	w, ok := r.window(block)
	if !ok {
		return netip.Addr{}, false
	}
	for x := w.lo; ; {
		u, ok := r.firstUsable(x)
		if !ok || w.hi.less(u) {
			return netip.Addr{}, false
		}
		if a := u.addr(r.is4()); taken == nil || !taken(a) {
			return a, true
		}
		if u == w.hi {
			return netip.Addr{}, false
		}
		x = u.next()
	}
}

// UsableIn is how many usable addresses block holds within the range, at most math.MaxInt32.
func (r Range) UsableIn(block netip.Prefix) int {
	w, ok := r.window(block)
	if !ok {
		return 0
	}
	holes := r.holes()
	total := u128{}
	for x := w.lo; ; {
		u, ok := r.firstUsable(x)
		if !ok || w.hi.less(u) {
			break
		}
		end := w.hi // the run of usable addresses from u ends before the next hole
		for _, h := range holes {
			if u.less(h.lo) && !end.less(h.lo) {
				end = h.lo.sub(u128{lo: 1})
			}
		}
		total = total.add(end.sub(u).next())
		if total.hi != 0 || total.lo >= math.MaxInt32 {
			return math.MaxInt32
		}
		if end == w.hi {
			break
		}
		x = end.next()
	}
	return int(total.lo)
}

// RangeFor is the range an address belongs to, for a requested address: the one whose
// Start..End holds it, else the first whose subnet does.
func (c Config) RangeFor(a netip.Addr) (Range, bool) {
	for _, r := range c.Ranges {
		if r.Contains(a) && !num(a).less(num(r.Start)) && !num(r.End).less(num(a)) {
			return r, true
		}
	}
	for _, r := range c.Ranges {
		if r.Contains(a) {
			return r, true
		}
	}
	return Range{}, false
}

func (r Range) is4() bool { return r.Subnet.Addr().Is4() }

// window is the part of block within Start..End; false when they do not meet.
func (r Range) window(block netip.Prefix) (span, bool) {
	if !block.IsValid() || !r.Start.IsValid() || block.Addr().Is4() != r.is4() {
		return span{}, false
	}
	b := spanOf(block)
	w := span{maxU(b.lo, num(r.Start)), minU(b.hi, num(r.End))}
	return w, !w.hi.less(w.lo)
}

// firstUsable is the lowest usable address at or above x; false when there is none up to End.
// Each step jumps past a whole hole, and x only grows, so it takes at most as many steps as
// there are holes, squared.
func (r Range) firstUsable(x u128) (u128, bool) {
	if !r.Start.IsValid() || !r.End.IsValid() {
		return u128{}, false
	}
	x = maxU(x, num(r.Start))
	end := num(r.End)
	holes := r.holes()
	for moved := true; moved; {
		if end.less(x) {
			return u128{}, false
		}
		moved = false
		for _, h := range holes {
			if x.less(h.lo) || h.hi.less(x) {
				continue
			}
			if !h.hi.less(end) {
				return u128{}, false
			}
			x, moved = h.hi.next(), true
		}
	}
	return x, true
}

// holes are the addresses of the subnet never handed out: Exclude, the gateway, the network
// address and, for IPv4, the broadcast address.
func (r Range) holes() []span {
	out := make([]span, 0, len(r.Exclude)+3)
	for _, p := range r.Exclude {
		if p.IsValid() && p.Addr().Is4() == r.is4() {
			out = append(out, spanOf(p))
		}
	}
	if r.Contains(r.Gateway) {
		g := num(r.Gateway)
		out = append(out, span{g, g})
	}
	if hostBits := r.Subnet.Addr().BitLen() - r.Subnet.Bits(); hostBits >= 2 {
		s := spanOf(r.Subnet)
		out = append(out, span{s.lo, s.lo})
		if r.is4() {
			out = append(out, span{s.hi, s.hi})
		}
	}
	return out
}
