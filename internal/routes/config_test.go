package routes

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseNetConfAcceptsRouteOverrideNames(t *testing.T) {
	conf := `{"cniVersion":"0.4.0","name":"n","type":"multinet-routes",
		"flushroutes":"true","flushgateway":true,
		"delroutes":[{"dst":"192.168.0.0/24"}],
		"addroutes":[{"dst":"192.168.1.0/24","gw":"10.1.254.254"}],
		"policyRouting":true,
		"args":{"cni":{"routes":[{"dst":"10.9.0.0/16"}],"addroutes":[{"dst":"10.8.0.0/16"}]}},
		"runtimeConfig":{"routes":[{"dst":"fd00:9::/64","gw":"fd00::1"}]}}`
	_, spec, err := ParseNetConf([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	if !spec.FlushRoutes || !spec.FlushGateway || spec.Policy == nil || spec.Policy.Table != 0 {
		t.Fatalf("flags not parsed: %+v", spec)
	}
	var dsts []string
	for _, r := range spec.Add {
		dsts = append(dsts, r.Field+"="+r.Dst.String())
	}
	want := "addRoutes[0]=192.168.1.0/24 runtimeConfig.routes[0]=fd00:9::/64 args.cni.routes[0]=10.9.0.0/16 args.cni.addRoutes[0]=10.8.0.0/16"
	if got := strings.Join(dsts, " "); got != want {
		t.Fatalf("add routes = %s, want %s", got, want)
	}
	if len(spec.Del) != 1 || spec.Del[0].Dst.String() != "192.168.0.0/24" {
		t.Fatalf("del routes = %+v", spec.Del)
	}
}

func TestParseNetConfPolicyRoutingForms(t *testing.T) {
	for conf, want := range map[string]string{
		`{"policyRouting":false}`:                        "off",
		`{"policyRouting":{"table":200,"priority":300}}`: "200/300",
		`{}`: "off",
	} {
		_, spec, err := ParseNetConf([]byte(conf))
		if err != nil {
			t.Fatal(err)
		}
		got := "off"
		if spec.Policy != nil {
			got = strings.Join([]string{strconv.Itoa(spec.Policy.Table), strconv.Itoa(spec.Policy.Priority)}, "/")
		}
		if got != want {
			t.Errorf("%s: policy = %s, want %s", conf, got, want)
		}
	}
}

func TestParseNetConfErrorsNameFieldAndValue(t *testing.T) {
	cases := map[string]string{
		`{"addRoutes":[{"dst":"10.0.0.0/33"}]}`:                       `addRoutes[0].dst: invalid CIDR "10.0.0.0/33"`,
		`{"delRoutes":[{"dst":"10.0.0.0/8","gw":"x"}]}`:               `delRoutes[0].gw: invalid IP "x"`,
		`{"addRoutes":[{"dst":"10.0.0.0/8","gw":"fd00::1"}]}`:         "addRoutes[0]: gw fd00::1 and dst 10.0.0.0/8 are of different address families",
		`{"args":{"cni":{"routes":[{"dst":"nope"}]}}}`:                `args.cni.routes[0].dst: invalid CIDR "nope"`,
		`{"subnetGroups":{"dds":{"subnets":{"1.2.3.0/24":{}}}}}`:      `subnetGroups["dds"].subnets["1.2.3.0/24"].gw: invalid IP ""`,
		`{"flushRoutes":"yes"}`:                                       `invalid boolean "yes"`,
		`{"cniVersion":"1.0.0","prevResult":{"ips":[{"address":1}]}}`: "prevResult",
	}
	for conf, want := range cases {
		_, _, err := ParseNetConf([]byte(conf))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error = %v, want it to contain %q", conf, err, want)
		}
	}
}

func TestParseSeedReadsRouteInjectorYAML(t *testing.T) {
	vrf := `---
interface: 'net1'
vrf:
  chile:
    subnets:
      139.229.147.0/24:
        gw: 139.229.147.254
      139.229.166.0/24:
        gw: 139.229.166.254
`
	ifname, groups, err := ParseSeed("vrf.yaml", []byte(vrf))
	if err != nil || ifname != "net1" || len(groups) != 1 || groups[0].Name != "chile" || len(groups[0].Subnets) != 2 {
		t.Fatalf("vrf form: %q %+v %v", ifname, groups, err)
	}
	flat := "interface: eth0\nsubnets:\n  10.0.0.0/8:\n    gw: 10.0.0.1\n  172.16.0.0/12:\n    gw: 172.16.0.1\n"
	ifname, groups, err = ParseSeed("flat.yaml", []byte(flat))
	if err != nil || ifname != "eth0" || len(groups) != 1 || groups[0].Name != SeedGroupName {
		t.Fatalf("flat form: %q %+v %v", ifname, groups, err)
	}
	for data, want := range map[string]string{
		"subnets:\n  10.0.0.0/8: {gw: 10.0.0.1}\n": `config f.yaml: "interface" key missing`,
		"interface: net1\n":                        `config f.yaml: neither "subnets" nor "vrf" is set`,
		"interface: [\n":                           "config f.yaml:",
		"interface: net1\nsubnets:\n  10.0.0.0/33: {gw: 10.0.0.1}\n": `invalid CIDR "10.0.0.0/33"`,
	} {
		if _, _, err := ParseSeed("f.yaml", []byte(data)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error = %v, want it to contain %q", data, err, want)
		}
	}
}

func FuzzParseSeed(f *testing.F) {
	f.Add([]byte("interface: net1\nsubnets:\n  10.0.0.0/8: {gw: 10.0.0.1}\n"))
	f.Add([]byte("interface: net1\nvrf:\n  a:\n    subnets:\n      fd00::/64: {gw: fd00::1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ifname, groups, err := ParseSeed("fuzz.yaml", data)
		if err == nil && (ifname == "" || len(groups) == 0) {
			t.Fatalf("accepted a config without interface or groups")
		}
	})
}

func FuzzParseNetConf(f *testing.F) {
	f.Add([]byte(`{"addroutes":[{"dst":"10.0.0.0/8","gw":"10.0.0.1"}],"flushroutes":"true"}`))
	f.Add([]byte(`{"subnetGroups":{"g":{"subnets":{"fd00::/64":{"gw":"fd00::1"}}}},"policyRouting":{"table":5}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, spec, err := ParseNetConf(data)
		if err == nil && spec == nil {
			t.Fatal("nil spec without error")
		}
	})
}
