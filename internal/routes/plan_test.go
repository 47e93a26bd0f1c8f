package routes

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func mustGroups(t testing.TB, in map[string]SubnetGroup) []Group {
	t.Helper()
	g, err := CompileGroups(in, "subnetGroups")
	if err != nil {
		t.Fatalf("compile groups: %v", err)
	}
	return g
}

func sg(pairs ...string) SubnetGroup {
	g := SubnetGroup{Subnets: map[string]Subnet{}}
	for i := 0; i < len(pairs); i += 2 {
		g.Subnets[pairs[i]] = Subnet{GW: pairs[i+1]}
	}
	return g
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestPlanSubnetGroups(t *testing.T) {
	dds := sg("10.201.1.0/24", "10.201.1.1", "10.201.2.0/24", "10.201.2.1", "10.201.3.0/24", "10.201.3.1",
		"fd00:201:1::/64", "fd00:201:1::1", "fd00:201:2::/64", "fd00:201:2::1")
	cases := []struct {
		name    string
		groups  map[string]SubnetGroup
		addrs   []string
		want    []string // "dst via gw"
		wantErr string
	}{
		{name: "address in A routes B and C via A's gateway", groups: map[string]SubnetGroup{"dds": dds},
			addrs: []string{"10.201.1.10/24"}, want: []string{"10.201.2.0/24 via 10.201.1.1", "10.201.3.0/24 via 10.201.1.1"}},
		{name: "IPv6 address routes the other v6 subnet only", groups: map[string]SubnetGroup{"dds": dds},
			addrs: []string{"fd00:201:1::10/64"}, want: []string{"fd00:201:2::/64 via fd00:201:1::1"}},
		{name: "address in no subnet is a no-op", groups: map[string]SubnetGroup{"dds": dds},
			addrs: []string{"192.168.7.3/24"}},
		{name: "most specific subnet wins", addrs: []string{"10.0.5.7/24"},
			groups: map[string]SubnetGroup{"g": sg("10.0.0.0/8", "10.0.0.1", "10.0.5.0/24", "10.0.5.254", "172.16.0.0/12", "172.16.0.1")},
			want:   []string{"10.0.0.0/8 via 10.0.5.254", "172.16.0.0/12 via 10.0.5.254"}},
		{name: "gateway off the address's network is an error", groups: map[string]SubnetGroup{"g": sg("10.201.1.0/24", "10.201.9.1", "10.201.2.0/24", "10.201.2.1")},
			addrs: []string{"10.201.1.10/24"}, wantErr: `subnet group "g": gateway 10.201.9.1 of subnet 10.201.1.0/24 is not on the directly reachable network 10.201.1.0/24`},
		{name: "two groups disagreeing on a destination is an error", addrs: []string{"10.201.1.10/24"},
			groups: map[string]SubnetGroup{
				"a": sg("10.201.1.0/24", "10.201.1.1", "10.9.0.0/16", "10.9.0.1"),
				"b": sg("10.201.1.0/24", "10.201.1.2", "10.9.0.0/16", "10.9.0.1")},
			wantErr: "route to 10.9.0.0/16 via 10.201.1.2 conflicts with the route via 10.201.1.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var addrs []netip.Prefix
			for _, a := range tc.addrs {
				addrs = append(addrs, pfx(a))
			}
			plan, err := PlanSubnetGroups(mustGroups(t, tc.groups), addrs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range plan {
				got = append(got, r.Dst.String()+" via "+r.GW.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("plan = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCompileGroupsRejectsBadSubnets(t *testing.T) {
	cases := map[string]struct {
		group SubnetGroup
		want  string
	}{
		"malformed CIDR":   {sg("10.0.0.0/33", "10.0.0.1"), `subnetGroups["g"].subnets: invalid CIDR "10.0.0.0/33"`},
		"host bits":        {sg("10.0.0.1/24", "10.0.0.1"), `CIDR "10.0.0.1/24" has host bits set (network is 10.0.0.0/24)`},
		"same subnet":      {sg("fd00::/64", "fd00::1", "fd00:0::/64", "fd00::1"), "are the same subnet"},
		"bad gateway":      {sg("10.0.0.0/24", "10.0.0.300"), `subnetGroups["g"].subnets["10.0.0.0/24"].gw: invalid IP "10.0.0.300"`},
		"family mismatch":  {sg("10.0.0.0/24", "fd00::1"), "fd00::1 is not of the subnet's address family"},
		"empty group":      {SubnetGroup{}, `subnetGroups["g"].subnets: no subnets`},
		"missing gateway":  {SubnetGroup{Subnets: map[string]Subnet{"10.0.0.0/24": {}}}, `invalid IP ""`},
		"mapped v4 subnet": {sg("::ffff:10.0.0.0/120", "10.0.0.1"), "write IPv4-mapped networks as IPv4"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := CompileGroups(map[string]SubnetGroup{"g": tc.group}, "subnetGroups")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzPlanSubnetGroups(f *testing.F) {
	f.Add("10.201.1.0/24", "10.201.1.1", "10.201.2.0/24", "10.201.2.1", "10.201.1.7/24")
	f.Add("fd00::/64", "fe80::1", "fd01::/64", "fd01::1", "fd00::9/64")
	f.Fuzz(func(t *testing.T, c1, g1, c2, g2, addr string) {
		groups, err := CompileGroups(map[string]SubnetGroup{"g": sg(c1, g1, c2, g2)}, "subnetGroups")
		if err != nil {
			return
		}
		a, err := netip.ParsePrefix(addr)
		if err != nil {
			return
		}
		plan, err := PlanSubnetGroups(groups, []netip.Prefix{a})
		if err != nil {
			return
		}
		for _, r := range plan {
			if r.Dst.Contains(a.Addr()) && r.Dst.Bits() >= a.Bits() {
				t.Fatalf("planned a route to the address's own subnet %s", r.Dst)
			}
			if !OnLink(r.GW, []netip.Prefix{a}) {
				t.Fatalf("planned gateway %s off link of %s", r.GW, a)
			}
		}
	})
}
