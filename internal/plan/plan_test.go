package plan

import (
	"encoding/json"
	"net"
	"reflect"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

var pod = Pod{Namespace: "ns", Name: "web-0", UID: "uid-1"}

const list = `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"macvlan"},{"type":"tuning"}]}`

func nw(name, ifname string) Network {
	return Network{Key: "ns/" + name, ConfList: []byte(list),
		Element: &nadv1.NetworkSelectionElement{Name: name, Namespace: "ns", InterfaceRequest: ifname}}
}

func ifnames(ds []Delegate) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.IfName)
	}
	return out
}

func TestInterfaceNames(t *testing.T) {
	cases := []struct {
		name  string
		nets  []Network
		taken []string
		want  []string
	}{
		{"in order", []Network{nw("a", ""), nw("b", ""), nw("c", "")}, []string{"eth0"}, []string{"net1", "net2", "net3"}},
		{"explicit kept, others fill from net1", []Network{nw("a", "eth9"), nw("b", "")}, []string{"eth0"}, []string{"eth9", "net1"}},
		{"explicit net1 skipped by generated", []Network{nw("a", ""), nw("b", "net1")}, []string{"eth0"}, []string{"net2", "net1"}},
		{"hot plug takes the lowest free", []Network{nw("c", "")}, []string{"eth0", "net1", "net3"}, []string{"net2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ds, err := Attachments(pod, "cid", c.nets, c.taken)
			if err != nil {
				t.Fatal(err)
			}
			if got := ifnames(ds); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("interfaces %v, want %v", got, c.want)
			}
		})
	}
}

func TestExplicitNameClashIsAnError(t *testing.T) {
	for _, nets := range [][]Network{
		{nw("a", "eth0")},
		{nw("a", "x1"), nw("b", "x1")},
	} {
		if _, err := Attachments(pod, "cid", nets, []string{"eth0"}); err == nil {
			t.Errorf("clash in %v accepted", ifnames(mustNames(nets)))
		}
	}
}

func mustNames(nets []Network) []Delegate {
	var ds []Delegate
	for _, n := range nets {
		ds = append(ds, Delegate{IfName: n.Element.InterfaceRequest})
	}
	return ds
}

func TestRequestsBecomeArgsAndCapabilities(t *testing.T) {
	n := nw("a", "")
	args := map[string]any{"foo": "bar"}
	n.Element.IPRequest = []string{"10.1.0.5/24", "2001:db8::5/64"}
	n.Element.MacRequest = "02:00:00:00:00:01"
	n.Element.CNIArgs = &args
	n.Element.GatewayRequest = []net.IP{net.ParseIP("10.1.0.1")}
	ds, err := Attachments(pod, "cid", []Network{n}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	want := map[string]string{"K8S_POD_NAMESPACE": "ns", "K8S_POD_NAME": "web-0", "K8S_POD_UID": "uid-1",
		"K8S_POD_INFRA_CONTAINER_ID": "cid", NetworkArg: "ns/a", "MAC": "02:00:00:00:00:01",
		"IgnoreUnknown": "true"}
	got := map[string]string{}
	for _, kv := range d.Args {
		got[kv[0]] = kv[1]
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CNI_ARGS %v, want %v", got, want)
	}
	if !reflect.DeepEqual(d.CapabilityArgs["ips"], n.Element.IPRequest) || d.CapabilityArgs["mac"] != "02:00:00:00:00:01" {
		t.Errorf("capability args %v", d.CapabilityArgs)
	}
	var parsed struct {
		Plugins []struct {
			Args struct {
				CNI map[string]any `json:"cni"`
			} `json:"args"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(d.ConfList, &parsed); err != nil {
		t.Fatal(err)
	}
	for i, p := range parsed.Plugins {
		if p.Args.CNI["foo"] != "bar" || !reflect.DeepEqual(p.Args.CNI["ips"], []any{"10.1.0.5/24", "2001:db8::5/64"}) {
			t.Errorf("plugin %d args.cni = %v, want foo=bar and both ips", i, p.Args.CNI)
		}
	}
	if len(d.DefaultRoute) != 1 || !d.DefaultRoute[0].Equal(net.ParseIP("10.1.0.1")) {
		t.Errorf("default route %v", d.DefaultRoute)
	}
}

// A plugin that declares a capability gets the request as runtimeConfig from libcni only:
// no args.cni.ips (host-local would ask for each address twice) and no CNI_ARGS MAC.
func TestDeclaredCapabilitiesTakeRequestsAlone(t *testing.T) {
	n := nw("a", "")
	n.ConfList = []byte(`{"cniVersion":"1.0.0","name":"n","plugins":[` +
		`{"type":"bridge","capabilities":{"ips":true,"mac":true}},{"type":"tuning"}]}`)
	n.Element.IPRequest = []string{"10.1.0.5/24", "2001:db8::5/64"}
	n.Element.MacRequest = "02:00:00:00:00:01"
	ds, err := Attachments(pod, "cid", []Network{n}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range ds[0].Args {
		if kv[0] == "IP" || kv[0] == "MAC" {
			t.Errorf("CNI_ARGS %s=%s given although a plugin declares the capability", kv[0], kv[1])
		}
	}
	var parsed struct {
		Plugins []struct {
			Args struct {
				CNI map[string]any `json:"cni"`
			} `json:"args"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(ds[0].ConfList, &parsed); err != nil {
		t.Fatal(err)
	}
	if parsed.Plugins[0].Args.CNI["ips"] != nil {
		t.Errorf("bridge declares ips but got args.cni.ips %v too", parsed.Plugins[0].Args.CNI)
	}
	if parsed.Plugins[1].Args.CNI["ips"] == nil {
		t.Errorf("tuning declares nothing and got no args.cni.ips")
	}
	if !reflect.DeepEqual(ds[0].CapabilityArgs["ips"], n.Element.IPRequest) {
		t.Errorf("capability args %v", ds[0].CapabilityArgs)
	}
}

func TestDefaultPassesRuntimeConfig(t *testing.T) {
	rc := map[string]any{"portMappings": []any{map[string]any{"hostPort": 8080}}}
	d := Default(pod, "cid", Network{Key: "cluster", ConfList: []byte(list)}, "eth0", rc)
	if !d.Default || d.IfName != "eth0" || !reflect.DeepEqual(d.CapabilityArgs, rc) {
		t.Fatalf("default delegate %+v", d)
	}
}

// TestSerialCarriedToDelegate: a network whose NAD opted out of parallel attach plans a
// delegate that says so; the others do not.
func TestSerialCarriedToDelegate(t *testing.T) {
	solo := nw("solo", "")
	solo.Serial = true
	ds, err := Attachments(pod, "cid", []Network{nw("a", ""), solo}, []string{"eth0"})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Serial || !ds[1].Serial {
		t.Fatalf("Serial of a, solo = %v, %v; want false, true", ds[0].Serial, ds[1].Serial)
	}
}
