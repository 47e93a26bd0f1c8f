package pool

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// Keys of the ipam section.
var (
	// readKeys are the keys Parse reads.
	readKeys = []string{"range", "range_start", "range_end", "exclude", "gateway", "ipRanges",
		"routes", "dns", "network_name", "enable_overlapping_ranges",
		"block_size", "block_size_v6", "sticky_hold"}
	// ignoredKeys are Whereabouts' operational keys, and the plugin's own: no meaning here.
	ignoredKeys = []string{"name", "type", "socket", "datastore", "kubernetes",
		"etcd_host", "etcd_username", "etcd_password", "etcd_key_file", "etcd_cert_file", "etcd_ca_cert_file",
		"log_file", "log_level", "configuration_path",
		"leader_lease_duration", "leader_renew_deadline", "leader_retry_period",
		"sleep_for_race", "reconciler_cron_expression", "node_slice_size"}
	// rangeKeys are the keys of an element of ipRanges.
	rangeKeys = []string{"range", "range_start", "range_end", "exclude", "gateway"}
)

// ipamConf is the ipam section as written.
type ipamConf struct {
	rangeConf
	IPRanges    []json.RawMessage `json:"ipRanges"`
	Routes      []*types.Route    `json:"routes"`
	DNS         types.DNS         `json:"dns"`
	NetworkName string            `json:"network_name"`
	Overlapping *bool             `json:"enable_overlapping_ranges"`
	BlockSize   json.RawMessage   `json:"block_size"`
	BlockSizeV6 json.RawMessage   `json:"block_size_v6"`
	StickyHold  json.RawMessage   `json:"sticky_hold"`
}

// rangeConf is one range as written: the top-level keys or an element of ipRanges.
type rangeConf struct {
	Range      string   `json:"range"`
	RangeStart string   `json:"range_start"`
	RangeEnd   string   `json:"range_end"`
	Exclude    []string `json:"exclude"`
	Gateway    string   `json:"gateway"`
}

// Parse reads the ipam section of a network configuration (a CNI call's stdin) that uses
// multinet-ipam, fills in the defaults and validates it. Whereabouts' keys are read as
// Whereabouts reads them; the top-level "range" and each of "ipRanges" make one Range each,
// in that order. The top-level "gateway" is the gateway of the ranges whose subnet holds it,
// and each top-level "exclude" applies to every range of its family. Every error is a fault of
// the configuration and names the key and its value.
func Parse(stdin []byte) (Config, error) {
	var nc struct {
		Name string          `json:"name"`
		IPAM json.RawMessage `json:"ipam"`
	}
	if err := json.Unmarshal(stdin, &nc); err != nil {
		return Config{}, fmt.Errorf("network configuration: %w", err)
	}
	if len(nc.IPAM) == 0 || string(nc.IPAM) == "null" {
		return Config{}, errors.New("no ipam section")
	}
	var ic ipamConf
	if err := decodeStrict(nc.IPAM, &ic, readKeys, ignoredKeys); err != nil {
		return Config{}, err
	}
	c := Config{Network: nc.Name, NetworkName: ic.NetworkName, Routes: ic.Routes, DNS: ic.DNS,
		Overlapping: ic.Overlapping == nil || *ic.Overlapping}
	var err error
	if c.StickyHold, err = stickyHold(ic.StickyHold); err != nil {
		return Config{}, err
	}
	if c.Ranges, err = ic.ranges(); err != nil {
		return Config{}, err
	}
	bits4, err := blockBits("block_size", ic.BlockSize, DefaultBlockBits4, 8, 30)
	if err != nil {
		return Config{}, err
	}
	bits6, err := blockBits("block_size_v6", ic.BlockSizeV6, DefaultBlockBits6, 64, 126)
	if err != nil {
		return Config{}, err
	}
	for i := range c.Ranges {
		r := &c.Ranges[i]
		r.BlockBits = bits6
		if r.is4() {
			r.BlockBits = bits4
		}
		r.Pool = ID(c.NetworkName, c.Overlapping, r.Subnet)
	}
	return c, nil
}

// ranges reads the top-level range and ipRanges, applies the top-level gateway and exclude
// and checks that the ranges are disjoint and that each has a usable address.
func (ic *ipamConf) ranges() ([]Range, error) {
	var out []Range
	if ic.Range != "" {
		top := ic.rangeConf
		top.Exclude, top.Gateway = nil, "" // the top-level ones apply to every range
		r, err := top.parse()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	} else if ic.RangeStart != "" || ic.RangeEnd != "" {
		return nil, errors.New("range_start and range_end need a range")
	}
	for i, raw := range ic.IPRanges {
		var rc rangeConf
		if err := decodeStrict(raw, &rc, rangeKeys, nil); err != nil {
			return nil, fmt.Errorf("ipRanges[%d]: %w", i, err)
		}
		r, err := rc.parse()
		if err != nil {
			return nil, fmt.Errorf("ipRanges[%d]: %w", i, err)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("no range: set range or ipRanges")
	}
	if err := applyGateway(out, ic.Gateway); err != nil {
		return nil, err
	}
	if err := applyExclude(out, ic.Exclude); err != nil {
		return nil, err
	}
	return out, checkRanges(out)
}

// parse reads one range: "10.1.0.0/24", "10.1.0.10-10.1.0.50/24" (start-end in the subnet) or
// "192.168.2.225/28" (a host address: the subnet, starting at that address unless range_start
// says otherwise), with range_start, range_end, exclude and gateway.
func (rc rangeConf) parse() (Range, error) {
	if rc.Range == "" {
		return Range{}, errors.New("range: missing")
	}
	startText, cidr, dashed := strings.Cut(rc.Range, "-")
	if !dashed {
		cidr = rc.Range
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil || p.Addr().Is4In6() {
		return Range{}, fmt.Errorf("range %q: want a CIDR such as \"10.1.0.0/24\" or \"10.1.0.10-10.1.0.50/24\"", rc.Range)
	}
	r := Range{Subnet: p.Masked()}
	if dashed {
		if r.Start, err = netip.ParseAddr(startText); err != nil {
			return Range{}, fmt.Errorf("range %q: start %q is not an IP address", rc.Range, startText)
		}
		r.End = p.Addr()
	} else if p.Addr() != r.Subnet.Addr() {
		r.Start = p.Addr() // as Whereabouts does
	}
	if r.Start, err = overrideAddr("range_start", rc.RangeStart, r.Start, dashed); err != nil {
		return Range{}, fmt.Errorf("range %q: %w", rc.Range, err)
	}
	if r.End, err = overrideAddr("range_end", rc.RangeEnd, r.End, dashed); err != nil {
		return Range{}, fmt.Errorf("range %q: %w", rc.Range, err)
	}
	if !r.Start.IsValid() {
		r.Start = defaultStart(r.Subnet)
	}
	if !r.End.IsValid() {
		r.End = defaultEnd(r.Subnet)
	}
	if err := r.checkEnds(); err != nil {
		return Range{}, err
	}
	one := []Range{r}
	if err := applyExclude(one, rc.Exclude); err != nil {
		return Range{}, fmt.Errorf("range %s: %w", r.Subnet, err)
	}
	r = one[0]
	if rc.Gateway != "" {
		if r.Gateway, err = netip.ParseAddr(rc.Gateway); err != nil || !r.Contains(r.Gateway) {
			return Range{}, fmt.Errorf("gateway %q: not an address of range %s", rc.Gateway, r.Subnet)
		}
	}
	return r, nil
}

// overrideAddr reads an address key (range_start, range_end) that replaces what the range
// said. A range written as start-end (fixed) may repeat the same address but not another.
func overrideAddr(key, text string, from netip.Addr, fixed bool) (netip.Addr, error) {
	if text == "" {
		return from, nil
	}
	a, err := netip.ParseAddr(text)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s %q is not an IP address", key, text)
	}
	if fixed && a != from {
		return netip.Addr{}, fmt.Errorf("%s %q disagrees with the range's own %s", key, text, from)
	}
	return a, nil
}

// defaultStart is the subnet's first address that may be handed out: the one after the
// network address (IPv4) or the subnet-router anycast address (IPv6), or the first address of
// subnets of one or two addresses.
func defaultStart(p netip.Prefix) netip.Addr {
	s := spanOf(p)
	if p.Addr().BitLen()-p.Bits() >= 2 {
		return s.lo.next().addr(p.Addr().Is4())
	}
	return s.lo.addr(p.Addr().Is4())
}

// defaultEnd is the subnet's last address, or the one before it for an IPv4 subnet of more
// than two addresses (its broadcast address).
func defaultEnd(p netip.Prefix) netip.Addr {
	s := spanOf(p)
	if p.Addr().Is4() && p.Bits() < 31 {
		return s.hi.sub(u128{lo: 1}).addr(true)
	}
	return s.hi.addr(p.Addr().Is4())
}

// checkEnds checks that Start and End are in the subnet, in order.
func (r Range) checkEnds() error {
	switch {
	case !r.Contains(r.Start):
		return fmt.Errorf("range %s: start %s is outside it", r.Subnet, r.Start)
	case !r.Contains(r.End):
		return fmt.Errorf("range %s: end %s is outside it", r.Subnet, r.End)
	case num(r.End).less(num(r.Start)):
		return fmt.Errorf("range %s: start %s is after end %s", r.Subnet, r.Start, r.End)
	}
	return nil
}

// applyGateway makes gw (the top-level "gateway") the gateway of each range whose subnet holds
// it and that has none of its own.
func applyGateway(ranges []Range, text string) error {
	if text == "" {
		return nil
	}
	gw, err := netip.ParseAddr(text)
	if err != nil {
		return fmt.Errorf("gateway %q is not an IP address", text)
	}
	found := false
	for i := range ranges {
		if ranges[i].Contains(gw) {
			found = true
			if !ranges[i].Gateway.IsValid() {
				ranges[i].Gateway = gw
			}
		}
	}
	if !found {
		return fmt.Errorf("gateway %s is in no range's subnet", gw)
	}
	return nil
}

// applyExclude adds each CIDR (or single address) of exclude to the ranges of its family; a
// CIDR whose family no range has is an error.
func applyExclude(ranges []Range, exclude []string) error {
	for _, text := range exclude {
		p, err := netip.ParsePrefix(text)
		if err != nil {
			a, aerr := netip.ParseAddr(text)
			if aerr != nil || a.Zone() != "" {
				return fmt.Errorf("exclude %q: want a CIDR such as \"10.1.0.0/28\"", text)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		p = p.Masked()
		found := false
		for i := range ranges {
			if ranges[i].is4() == p.Addr().Is4() {
				ranges[i].Exclude = append(ranges[i].Exclude, p)
				found = true
			}
		}
		if !found {
			return fmt.Errorf("exclude %q: no range of its address family", text)
		}
	}
	return nil
}

// checkRanges checks that no two ranges share an address and that each has a usable one.
func checkRanges(ranges []Range) error {
	for i, r := range ranges {
		if !r.FirstBlock().IsValid() {
			return fmt.Errorf("range %s: no address may be handed out (all excluded, reserved or the gateway)", r)
		}
		for _, o := range ranges[:i] {
			if o.is4() == r.is4() && !num(r.End).less(num(o.Start)) && !num(o.End).less(num(r.Start)) {
				return fmt.Errorf("ranges %s and %s overlap", o, r)
			}
		}
	}
	return nil
}

// blockBits reads a block size: a prefix length as a number, "26" or "/26", within lo..hi.
func blockBits(key string, raw json.RawMessage, def, lo, hi int) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return def, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, fmt.Errorf("%s %s: want a prefix length such as %d or \"/%d\"", key, raw, def, def)
		}
		if n, err = strconv.Atoi(strings.TrimPrefix(s, "/")); err != nil {
			return 0, fmt.Errorf("%s %q: want a prefix length such as %d or \"/%d\"", key, s, def, def)
		}
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%s %d: want %d to %d (a block holds at least 4 addresses)", key, n, lo, hi)
	}
	return n, nil
}

// stickyHold reads sticky_hold: a duration such as "10m" ("0" turns the hold off) or a number
// of seconds.
func stickyHold(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return DefaultStickyHold, nil
	}
	var d time.Duration
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("sticky_hold %q: want a duration such as \"10m\" (\"0\": no hold)", s)
		}
	} else {
		var secs float64
		if json.Unmarshal(raw, &secs) != nil {
			return 0, fmt.Errorf("sticky_hold %s: want a duration such as \"10m\" (\"0\": no hold)", raw)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 {
		return 0, fmt.Errorf("sticky_hold %s: must not be negative", raw)
	}
	return d, nil
}

// decodeStrict decodes raw (a JSON object) into v, after checking its keys: a key neither in
// read nor in ignored is an error, not skipped, since a misspelt "exlude" would quietly hand
// out the addresses it meant to keep. Keys match as encoding/json matches them, regardless of
// case. "addresses" (Whereabouts' static assignment) is refused with where to go instead.
func decodeStrict(raw json.RawMessage, v any, read, ignored []string) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil || keys == nil {
		return fmt.Errorf("want a JSON object, not %.20s", raw)
	}
	known := func(k string) bool {
		eq := func(f string) bool { return strings.EqualFold(f, k) }
		return slices.ContainsFunc(read, eq) || slices.ContainsFunc(ignored, eq)
	}
	var unknown []string
	for k := range keys {
		if strings.EqualFold(k, "addresses") {
			return errors.New(`addresses: static addresses are not multinet-ipam's; use the static IPAM plugin, or "ips" in the pod's networks annotation`)
		}
		if !known(k) {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		msg := fmt.Sprintf("unknown key %s (multinet-ipam reads %s", strings.Join(unknown, ", "), strings.Join(read, ", "))
		if len(ignored) > 0 {
			msg += "; it accepts and ignores " + strings.Join(ignored, ", ")
		}
		return errors.New(msg + ")")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			field := strings.TrimPrefix(te.Field, "rangeConf.") // the top-level range keys
			return fmt.Errorf("%s: a JSON %s where a %s belongs", field, te.Value, te.Type)
		}
		return err
	}
	return nil
}
