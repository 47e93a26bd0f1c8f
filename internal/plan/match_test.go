package plan

import (
	"reflect"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

func el(name, ifname string, ips ...string) Network {
	e := &nadv1.NetworkSelectionElement{Name: name, Namespace: "ns", InterfaceRequest: ifname, IPRequest: ips}
	return Network{Key: "ns/" + name, Element: e}
}

func att(n Network, ifname string) Attached {
	return Attached{IfName: ifname, Identity: Identity(n.Element), Complete: true}
}

func TestMatch(t *testing.T) {
	a, b, named := el("a", ""), el("b", ""), el("a", "eth9")
	cases := []struct {
		name       string
		nets       []Network
		attached   []Attached
		wantUnplug []string
		wantPlug   []int
	}{
		{"nothing changed", []Network{a, b}, []Attached{att(a, "net1"), att(b, "net2")}, nil, nil},
		{"reordered: no change", []Network{b, a}, []Attached{att(a, "net1"), att(b, "net2")}, nil, nil},
		{"one added", []Network{a, b}, []Attached{att(a, "net1")}, nil, []int{1}},
		{"one removed", []Network{b}, []Attached{att(a, "net1"), att(b, "net2")}, []string{"net1"}, nil},
		{"same network twice", []Network{a, a}, []Attached{att(a, "net1")}, nil, []int{1}},
		{"one of two identical removed: the later goes", []Network{a}, []Attached{att(a, "net1"), att(a, "net2")}, []string{"net2"}, nil},
		{"attribute changed: replug", []Network{el("a", "", "10.0.0.5/24")}, []Attached{att(a, "net1")}, []string{"net1"}, []int{0}},
		{"interface named now: replug", []Network{named}, []Attached{att(a, "net1")}, []string{"net1"}, []int{0}},
		{"named kept", []Network{named, a}, []Attached{att(a, "net1"), att(named, "eth9")}, nil, nil},
		{"incomplete ADD: unplug and plug again", []Network{a}, []Attached{{IfName: "net1", Identity: Identity(a.Element)}}, []string{"net1"}, []int{0}},
		{"all removed", nil, []Attached{att(a, "net1"), att(b, "net2")}, []string{"net1", "net2"}, nil},
		{"legacy record matches the short form", []Network{a, named}, []Attached{
			{IfName: "net1", Identity: LegacyIdentity("ns/a", "net1"), Complete: true},
			{IfName: "eth9", Identity: LegacyIdentity("ns/a", "eth9"), Complete: true}}, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			unplug, plug := Match(c.nets, c.attached)
			if !reflect.DeepEqual(unplug, c.wantUnplug) || !reflect.DeepEqual(plug, c.wantPlug) {
				t.Errorf("Match = unplug %v plug %v, want %v %v", unplug, plug, c.wantUnplug, c.wantPlug)
			}
		})
	}
}
