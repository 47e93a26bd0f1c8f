package pool

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// u128 is an address as a number: an IPv4 address in the low 32 bits, an IPv6 address in all
// 128. The arithmetic wraps; callers compare against the range's ends before stepping past
// them.
type u128 struct{ hi, lo uint64 }

func num(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// addr is the address of family is4 whose number is u.
func (u u128) addr(is4 bool) netip.Addr {
	if is4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(u.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	return netip.AddrFrom16(b)
}

func (u u128) cmp(v u128) int {
	switch {
	case u.hi < v.hi:
		return -1
	case u.hi > v.hi:
		return 1
	case u.lo < v.lo:
		return -1
	case u.lo > v.lo:
		return 1
	}
	return 0
}

func (u u128) less(v u128) bool { return u.cmp(v) < 0 }

func (u u128) add(v u128) u128 {
	lo, carry := bits.Add64(u.lo, v.lo, 0)
	hi, _ := bits.Add64(u.hi, v.hi, carry)
	return u128{hi, lo}
}

func (u u128) sub(v u128) u128 {
	lo, borrow := bits.Sub64(u.lo, v.lo, 0)
	hi, _ := bits.Sub64(u.hi, v.hi, borrow)
	return u128{hi, lo}
}

func (u u128) next() u128 { return u.add(u128{lo: 1}) }

func (u u128) or(v u128) u128 { return u128{u.hi | v.hi, u.lo | v.lo} }

// lsh shifts left by n (0..127).
func (u u128) lsh(n int) u128 {
	switch {
	case n == 0:
		return u
	case n >= 64:
		return u128{hi: u.lo << (n - 64)}
	}
	return u128{hi: u.hi<<n | u.lo>>(64-n), lo: u.lo << n}
}

// rsh shifts right by n (0..127).
func (u u128) rsh(n int) u128 {
	switch {
	case n == 0:
		return u
	case n >= 64:
		return u128{lo: u.hi >> (n - 64)}
	}
	return u128{hi: u.hi >> n, lo: u.lo>>n | u.hi<<(64-n)}
}

// ones is the number with the low n bits set (n: 0..128).
func ones(n int) u128 {
	switch {
	case n >= 128:
		return u128{^uint64(0), ^uint64(0)}
	case n >= 64:
		return u128{hi: 1<<(n-64) - 1, lo: ^uint64(0)}
	}
	return u128{lo: 1<<n - 1}
}

func maxU(u, v u128) u128 {
	if u.less(v) {
		return v
	}
	return u
}

func minU(u, v u128) u128 {
	if v.less(u) {
		return v
	}
	return u
}

// span is an inclusive interval of addresses.
type span struct{ lo, hi u128 }

// spanOf is the interval of the addresses of p.
func spanOf(p netip.Prefix) span {
	lo := num(p.Masked().Addr())
	return span{lo, lo.or(ones(p.Addr().BitLen() - p.Bits()))}
}
