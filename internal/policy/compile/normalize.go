package compile

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/multinet/multinet/internal/policy/spec"
)

// normalizeAllows merges allows, whose addresses are normalized, into their canonical
// form: one allow per set of ports (their addresses merged), none that matches nothing,
// sorted by ports (every port first); a single allow when one lets everything through.
// nil when nothing is allowed.
func normalizeAllows(allows []Allow) []Allow {
	type group struct {
		allow Allow
		runs  [][]netip.Prefix
	}
	groups := map[string]*group{}
	for _, a := range allows {
		if !a.Any && len(a.Addrs) == 0 {
			continue
		}
		ports := normalizePorts(a.Ports)
		key := portsKey(ports)
		g, ok := groups[key]
		if !ok {
			g = &group{allow: Allow{Ports: ports}}
			groups[key] = g
		}
		g.allow.Any = g.allow.Any || a.Any
		g.runs = append(g.runs, a.Addrs)
	}
	if g, ok := groups[""]; ok && g.allow.Any {
		return []Allow{{Any: true}}
	}
	if len(groups) == 0 {
		return nil
	}
	out := make([]Allow, 0, len(groups))
	for _, g := range groups {
		if !g.allow.Any {
			g.allow.Addrs = unionPrefixes(g.runs)
		}
		out = append(out, g.allow)
	}
	slices.SortFunc(out, func(a, b Allow) int { return comparePorts(a.Ports, b.Ports) })
	return out
}

// normalizePorts merges ranges: sorted by protocol then first port, overlapping and
// adjacent ranges of a protocol joined, a range covering every port written First 0, Last 0.
// nil when ps is empty (every port).
func normalizePorts(ps []PortRange) []PortRange {
	if len(ps) == 0 {
		return nil
	}
	type span struct {
		proto  spec.Protocol
		lo, hi int
	}
	spans := make([]span, 0, len(ps))
	for _, p := range ps {
		lo, hi := int(p.First), int(max(p.Last, p.First))
		if lo == 0 {
			lo, hi = 1, 65535
		}
		spans = append(spans, span{p.Protocol, lo, hi})
	}
	slices.SortFunc(spans, func(a, b span) int {
		return cmp.Or(strings.Compare(string(a.proto), string(b.proto)), a.lo-b.lo, a.hi-b.hi)
	})
	merged := spans[:1]
	for _, s := range spans[1:] {
		last := &merged[len(merged)-1]
		if s.proto == last.proto && s.lo <= last.hi+1 {
			last.hi = max(last.hi, s.hi)
			continue
		}
		merged = append(merged, s)
	}
	out := make([]PortRange, len(merged))
	for i, s := range merged {
		out[i] = PortRange{Protocol: s.proto, First: uint16(s.lo), Last: uint16(s.hi)}
		if s.lo == 1 && s.hi == 65535 {
			out[i].First, out[i].Last = 0, 0
		}
	}
	return out
}

// portsKey is a key of normalized ports; "" for every port.
func portsKey(ps []PortRange) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(string(p.Protocol))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(int(p.First)))
		b.WriteByte('-')
		b.WriteString(strconv.Itoa(int(p.Last)))
		b.WriteByte(',')
	}
	return b.String()
}

// comparePorts orders normalized port lists: every port (none) first, then range by range.
func comparePorts(a, b []PortRange) int {
	return slices.CompareFunc(a, b, func(x, y PortRange) int {
		return cmp.Or(strings.Compare(string(x.Protocol), string(y.Protocol)),
			cmp.Compare(x.First, y.First), cmp.Compare(x.Last, y.Last))
	})
}
