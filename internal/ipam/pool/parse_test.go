package pool

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// netConf is a whole network configuration around an ipam section.
func netConf(ipam string) []byte {
	return []byte(`{"cniVersion":"1.0.0","name":"storage","type":"macvlan","master":"eth1","ipam":` + ipam + `}`)
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// rng is a Range written short: subnet, start, end, gateway ("" none), excludes.
func rng(subnet, start, end, gw string, exclude ...string) Range {
	r := Range{Subnet: netip.MustParsePrefix(subnet), Start: netip.MustParseAddr(start),
		End: netip.MustParseAddr(end), Exclude: prefixes(exclude...)}
	if gw != "" {
		r.Gateway = netip.MustParseAddr(gw)
	}
	return r
}

func TestParseWhereaboutsNAD(t *testing.T) {
	for _, tc := range []struct {
		name string
		ipam string
		want []Range // Pool and BlockBits are checked separately
	}{
		{"plain CIDR: network and broadcast skipped",
			`{"type":"multinet-ipam","range":"10.1.0.0/24"}`,
			[]Range{rng("10.1.0.0/24", "10.1.0.1", "10.1.0.254", "")}},
		{"start-end inside the subnet",
			`{"type":"multinet-ipam","range":"10.1.0.10-10.1.0.50/24"}`,
			[]Range{rng("10.1.0.0/24", "10.1.0.10", "10.1.0.50", "")}},
		{"host address masks to the subnet and becomes range_start",
			`{"type":"multinet-ipam","range":"192.168.2.225/28"}`,
			[]Range{rng("192.168.2.224/28", "192.168.2.225", "192.168.2.238", "")}},
		{"range_start wins over the host address",
			`{"type":"multinet-ipam","range":"192.168.2.225/28","range_start":"192.168.2.230"}`,
			[]Range{rng("192.168.2.224/28", "192.168.2.230", "192.168.2.238", "")}},
		{"the whole Whereabouts NAD: start, end, exclude, gateway, operational keys",
			`{"type":"whereabouts","range":"10.2.0.0/16","range_start":"10.2.0.10","range_end":"10.2.3.250",
			  "exclude":["10.2.1.0/24","10.2.2.7/32","10.2.2.9"],"gateway":"10.2.0.1",
			  "datastore":"kubernetes","kubernetes":{"kubeconfig":"/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig"},
			  "log_file":"/tmp/whereabouts.log","log_level":"debug","leader_lease_duration":1500,
			  "reconciler_cron_expression":"30 4 * * *","node_slice_size":"/22","etcd_host":"x","sleep_for_race":1,
			  "routes":[{"dst":"10.9.0.0/16"}],"dns":{"nameservers":["10.2.0.53"]}}`,
			[]Range{rng("10.2.0.0/16", "10.2.0.10", "10.2.3.250", "10.2.0.1", "10.2.1.0/24", "10.2.2.7/32", "10.2.2.9/32")}},
		{"IPv6: subnet-router anycast skipped, last address usable",
			`{"type":"multinet-ipam","range":"fd00::/64"}`,
			[]Range{rng("fd00::/64", "fd00::1", "fd00::ffff:ffff:ffff:ffff", "")}},
		{"/31 and /128: every address usable",
			`{"type":"multinet-ipam","ipRanges":[{"range":"10.3.0.0/31"},{"range":"fd01::5/128"}]}`,
			[]Range{rng("10.3.0.0/31", "10.3.0.0", "10.3.0.1", ""), rng("fd01::5/128", "fd01::5", "fd01::5", "")}},
		{"dual stack: range and ipRanges combined, top-level gateway and exclude by family",
			`{"type":"multinet-ipam","range":"10.4.0.0/24","gateway":"10.4.0.1","exclude":["10.4.0.128/25","fd04::/120"],
			  "ipRanges":[{"range":"fd04::/64","gateway":"fd04::1","exclude":["fd04::1:0/112"]}]}`,
			[]Range{rng("10.4.0.0/24", "10.4.0.1", "10.4.0.254", "10.4.0.1", "10.4.0.128/25"),
				rng("fd04::/64", "fd04::1", "fd04::ffff:ffff:ffff:ffff", "fd04::1", "fd04::1:0/112", "fd04::/120")}},
		{"two disjoint ranges of one subnet share the top-level gateway",
			`{"type":"multinet-ipam","gateway":"10.5.0.1",
			  "ipRanges":[{"range":"10.5.0.10-10.5.0.20/24"},{"range":"10.5.0.100-10.5.0.120/24"}]}`,
			[]Range{rng("10.5.0.0/24", "10.5.0.10", "10.5.0.20", "10.5.0.1"), rng("10.5.0.0/24", "10.5.0.100", "10.5.0.120", "10.5.0.1")}},
		{"keys match regardless of case, as encoding/json matches them",
			`{"Type":"multinet-ipam","RANGE":"10.6.0.0/24","Range_End":"10.6.0.99"}`,
			[]Range{rng("10.6.0.0/24", "10.6.0.1", "10.6.0.99", "")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(netConf(tc.ipam))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(c.Ranges) != len(tc.want) {
				t.Fatalf("%d ranges %v, want %d", len(c.Ranges), c.Ranges, len(tc.want))
			}
			for i, got := range c.Ranges {
				want := tc.want[i]
				if got.Subnet != want.Subnet || got.Start != want.Start || got.End != want.End ||
					got.Gateway != want.Gateway || !slices.Equal(got.Exclude, want.Exclude) {
					t.Errorf("range %d = %s %v gw %v exclude %v\n want %s %v gw %v exclude %v", i,
						got.Subnet, got, got.Gateway, got.Exclude, want.Subnet, want, want.Gateway, want.Exclude)
				}
			}
		})
	}
}

func TestParseWhereaboutsNADKeepsRoutesDNSAndNetwork(t *testing.T) {
	c, err := Parse(netConf(`{"type":"multinet-ipam","range":"10.2.0.0/16","network_name":"blue",
		"routes":[{"dst":"10.9.0.0/16","gw":"10.2.0.1"}],"dns":{"nameservers":["10.2.0.53"],"search":["svc"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Network != "storage" || c.NetworkName != "blue" {
		t.Errorf("Network %q NetworkName %q, want storage and blue", c.Network, c.NetworkName)
	}
	if len(c.Routes) != 1 || c.Routes[0].Dst.String() != "10.9.0.0/16" || c.Routes[0].GW.String() != "10.2.0.1" {
		t.Errorf("routes %v", c.Routes)
	}
	if !slices.Equal(c.DNS.Nameservers, []string{"10.2.0.53"}) || !slices.Equal(c.DNS.Search, []string{"svc"}) {
		t.Errorf("dns %+v", c.DNS)
	}
}

func TestParseDefaultsAndMultinetKeys(t *testing.T) {
	for _, tc := range []struct {
		name        string
		extra       string
		bits4       int
		bits6       int
		hold        time.Duration
		overlapping bool
	}{
		{"defaults", ``, 26, 122, 10 * time.Minute, true},
		{"block sizes as numbers", `,"block_size":24,"block_size_v6":120`, 24, 120, 10 * time.Minute, true},
		{"block sizes as /N strings", `,"block_size":"/28","block_size_v6":"126"`, 28, 126, 10 * time.Minute, true},
		{"sticky_hold as a duration", `,"sticky_hold":"1h30m"`, 26, 122, 90 * time.Minute, true},
		{"sticky_hold 0 turns it off", `,"sticky_hold":"0"`, 26, 122, 0, true},
		{"sticky_hold 0s turns it off", `,"sticky_hold":"0s"`, 26, 122, 0, true},
		{"overlapping off", `,"enable_overlapping_ranges":false`, 26, 122, 10 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(netConf(`{"type":"multinet-ipam","range":"10.1.0.0/24","ipRanges":[{"range":"fd00::/64"}]` + tc.extra + `}`))
			if err != nil {
				t.Fatal(err)
			}
			if c.Ranges[0].BlockBits != tc.bits4 || c.Ranges[1].BlockBits != tc.bits6 {
				t.Errorf("block bits %d, %d; want %d, %d", c.Ranges[0].BlockBits, c.Ranges[1].BlockBits, tc.bits4, tc.bits6)
			}
			if c.StickyHold != tc.hold || c.Overlapping != tc.overlapping {
				t.Errorf("sticky hold %v overlapping %v; want %v %v", c.StickyHold, c.Overlapping, tc.hold, tc.overlapping)
			}
		})
	}
}

func TestPoolIDSharesOverlappingRangesOfANetworkName(t *testing.T) {
	for _, tc := range []struct {
		ipam string
		want []string
	}{
		{`{"range":"10.1.0.0/24","ipRanges":[{"range":"fd00::/64"}]}`, []string{"/v4", "/v6"}},
		{`{"range":"10.1.0.0/24","network_name":"blue"}`, []string{"blue/v4"}},
		{`{"range":"10.1.0.0/24","ipRanges":[{"range":"10.2.0.0/24"}],"network_name":"blue"}`, []string{"blue/v4", "blue/v4"}},
		{`{"range":"10.1.0.0/24","ipRanges":[{"range":"10.2.0.0/24"}],"enable_overlapping_ranges":false}`,
			[]string{"/10.1.0.0/24", "/10.2.0.0/24"}},
		{`{"range":"fd00::8/64","network_name":"red","enable_overlapping_ranges":false}`, []string{"red/fd00::/64"}},
	} {
		c, err := Parse(netConf(tc.ipam))
		if err != nil {
			t.Fatalf("%s: %v", tc.ipam, err)
		}
		var got []string
		for _, r := range c.Ranges {
			got = append(got, r.Pool)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: pools %q, want %q", tc.ipam, got, tc.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		ipam string
		want string // in the error
	}{
		{"no ipam section", `null`, "no ipam section"},
		{"no range", `{"type":"multinet-ipam"}`, "no range"},
		{"static addresses", `{"range":"10.1.0.0/24","addresses":[{"address":"10.1.0.5/24"}]}`, "static IPAM plugin"},
		{"unknown key, named, with the accepted ones", `{"range":"10.1.0.0/24","exlude":["10.1.0.0/28"]}`,
			`unknown key "exlude" (multinet-ipam reads range, range_start`},
		{"unknown key in ipRanges", `{"ipRanges":[{"range":"10.1.0.0/24","block_size":24}]}`, `ipRanges[0]: unknown key "block_size"`},
		{"bad CIDR", `{"range":"10.1.0.0/33"}`, `range "10.1.0.0/33"`},
		{"not a CIDR", `{"range":"10.1.0.0"}`, `range "10.1.0.0"`},
		{"IPv4-mapped subnet", `{"range":"::ffff:10.1.0.0/120"}`, `range "::ffff:10.1.0.0/120"`},
		{"bad dashed start", `{"range":"10.1.0.x-10.1.0.50/24"}`, `start "10.1.0.x"`},
		{"dashed start outside", `{"range":"10.2.0.1-10.1.0.50/24"}`, "start 10.2.0.1 is outside"},
		{"range_start outside", `{"range":"10.1.0.0/24","range_start":"10.1.1.1"}`, "start 10.1.1.1 is outside"},
		{"range_end of the other family", `{"range":"10.1.0.0/24","range_end":"fd00::1"}`, "end fd00::1 is outside"},
		{"start after end", `{"range":"10.1.0.0/24","range_start":"10.1.0.9","range_end":"10.1.0.8"}`, "start 10.1.0.9 is after end 10.1.0.8"},
		{"range_start that disagrees with start-end", `{"range":"10.1.0.10-10.1.0.50/24","range_start":"10.1.0.11"}`, `range_start "10.1.0.11" disagrees`},
		{"range_start without range", `{"range_start":"10.1.0.1","ipRanges":[{"range":"10.1.0.0/24"}]}`, "need a range"},
		{"gateway outside", `{"range":"10.1.0.0/24","gateway":"10.9.0.1"}`, "gateway 10.9.0.1 is in no range's subnet"},
		{"gateway of the other family", `{"range":"10.1.0.0/24","gateway":"fd00::1"}`, "gateway fd00::1"},
		{"ipRanges gateway outside", `{"ipRanges":[{"range":"fd00::/64","gateway":"fd01::1"}]}`, `gateway "fd01::1": not an address of range fd00::/64`},
		{"exclude of the other family", `{"range":"10.1.0.0/24","exclude":["fd00::/64"]}`, `exclude "fd00::/64": no range of its address family`},
		{"ipRanges exclude of the other family", `{"ipRanges":[{"range":"10.1.0.0/24","exclude":["fd00::/64"]}]}`, `exclude "fd00::/64"`},
		{"bad exclude", `{"range":"10.1.0.0/24","exclude":["10.1.0.0/99"]}`, `exclude "10.1.0.0/99"`},
		{"overlapping ranges", `{"range":"10.1.0.0/16","ipRanges":[{"range":"10.1.5.0/24"}]}`, "overlap"},
		{"everything excluded", `{"range":"10.1.0.0/24","exclude":["10.1.0.0/24"]}`, "no address may be handed out"},
		{"only the gateway", `{"range":"10.1.0.1-10.1.0.1/24","gateway":"10.1.0.1"}`, "no address may be handed out"},
		{"block_size too small a block", `{"range":"10.1.0.0/24","block_size":31}`, "block_size 31: want 8 to 30"},
		{"block_size_v6 too big a block", `{"range":"10.1.0.0/24","block_size_v6":48}`, "block_size_v6 48: want 64 to 126"},
		{"block_size not a number", `{"range":"10.1.0.0/24","block_size":"big"}`, `block_size "big"`},
		{"sticky_hold not a duration", `{"range":"10.1.0.0/24","sticky_hold":"soon"}`, `sticky_hold "soon"`},
		{"sticky_hold negative", `{"range":"10.1.0.0/24","sticky_hold":"-1m"}`, "must not be negative"},
		{"wrong JSON type names the key", `{"range":24}`, "range: a JSON number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(netConf(tc.ipam))
			if err == nil {
				t.Fatalf("Parse accepted %s", tc.ipam)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if err.Error() != strings.ToLower(err.Error()[:1])+err.Error()[1:] {
				t.Errorf("error %q starts upper case", err)
			}
		})
	}
}

func TestParseErrorNeverDumpsTheConfig(t *testing.T) {
	_, err := Parse(netConf(`{"range":"10.1.0.0/24","etcd_password":"hunter2","bogus":1}`))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v", err)
	}
}

// FuzzParse checks that Parse never panics and that every range it returns is consistent:
// Start <= End, both in the subnet, and the block walk, BlockAt and FreeIn land on usable
// addresses.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"range":"10.1.0.0/24"}`,
		`{"range":"10.1.0.10-10.1.0.50/24","exclude":["10.1.0.16/28"],"gateway":"10.1.0.10"}`,
		`{"range":"192.168.2.225/28","block_size":30}`,
		`{"range":"fd00::/64","exclude":["fd00::/100"],"block_size_v6":"/126"}`,
		`{"range":"10.3.0.0/31","ipRanges":[{"range":"fd01::5/128"},{"range":"::/0"}]}`,
		`{"ipRanges":[{"range":"0.0.0.0/0","exclude":["0.0.0.0/1"]}],"sticky_hold":"0"}`,
		`{"range":"10.2.0.0/16","range_start":"10.2.0.10","range_end":"10.2.3.250","network_name":"n","enable_overlapping_ranges":false}`,
	} {
		f.Add(netConf(s))
	}
	f.Fuzz(func(t *testing.T, stdin []byte) {
		c, err := Parse(stdin)
		if err != nil {
			return
		}
		for _, r := range c.Ranges {
			checkRange(t, r)
		}
	})
}

func checkRange(t *testing.T, r Range) {
	t.Helper()
	if !r.Contains(r.Start) || !r.Contains(r.End) || num(r.End).less(num(r.Start)) {
		t.Fatalf("range %v: start/end not in order in subnet %s", r, r.Subnet)
	}
	b := r.FirstBlock()
	if !b.IsValid() || r.UsableIn(b) == 0 {
		t.Fatalf("range %v: first block %v has no usable address", r, b)
	}
	for i := 0; i < 3; i++ {
		a, ok := r.FreeIn(b, nil)
		if !ok || !r.Usable(a) || !b.Contains(a) {
			t.Fatalf("range %v: FreeIn(%v) = %v, %v", r, b, a, ok)
		}
		next, ok := r.NextBlock(b)
		if !ok {
			break
		}
		if !num(b.Addr()).less(num(next.Addr())) {
			t.Fatalf("range %v: NextBlock(%v) = %v went back", r, b, next)
		}
		b = next
	}
	if at := r.BlockAt(0xdeadbeef); r.UsableIn(at) == 0 {
		t.Fatalf("range %v: BlockAt = %v has no usable address", r, at)
	}
}
