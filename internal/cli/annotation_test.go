package cli

import (
	"slices"
	"strings"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestAppendElementKeepsTheForm(t *testing.T) {
	for _, c := range []struct {
		name, value string
		add         element
		want        string
	}{
		{"empty stays short", "", element{Name: "green"}, "green"},
		{"short stays short", "blue, other/red@r0", element{Name: "green", Interface: "g0"}, "blue, other/red@r0,green@g0"},
		{"other namespace", "blue", element{Name: "green", Namespace: "shared"}, "blue,shared/green"},
		{"ips turn short into JSON", "blue,other/red@r0", element{Name: "green", IPs: []string{"10.1.0.5/24"}},
			`[{"name":"blue"},{"name":"red","namespace":"other","interface":"r0"},{"name":"green","ips":["10.1.0.5/24"]}]`},
		{"mac on empty", "", element{Name: "green", MAC: "02:00:00:00:00:01"}, `[{"name":"green","mac":"02:00:00:00:00:01"}]`},
		{"JSON kept as written", `[{"name":"blue","default-route":["10.1.0.1"]}]`, element{Name: "green"},
			`[{"name":"blue","default-route":["10.1.0.1"]},{"name":"green"}]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := appendElement(c.value, "pods", c.add)
			if err != nil || got != c.want {
				t.Errorf("appendElement(%q, %+v) = %q, %v; want %q", c.value, c.add, got, err, c.want)
			}
		})
	}
}

func TestRemoveElementKeepsTheForm(t *testing.T) {
	for _, c := range []struct {
		value string
		index int
		want  string
	}{
		{"blue, green ,red", 1, "blue,red"},
		{"blue", 0, ""},
		{`[{"name":"blue"},{"name":"green","ips":["10.1.0.5/24"]}]`, 1, `[{"name":"blue"}]`},
		{`[{"name":"blue"}]`, 0, `[]`},
	} {
		got, err := removeElement(c.value, c.index)
		if err != nil || got != c.want {
			t.Errorf("removeElement(%q, %d) = %q, %v; want %q", c.value, c.index, got, err, c.want)
		}
	}
	if _, err := removeElement("blue", 3); err == nil {
		t.Error("removeElement of a missing element did not fail")
	}
}

func TestClassifyWarning(t *testing.T) {
	pod := &corev1.Pod{}
	for _, c := range []struct {
		reason, message, want, fix string
	}{
		{"PlugFailed", `network "t/tiny" (net2): plugin type="bridge" failed (add): failed to allocate for range 0: no IP addresses available in range set: 10.10.7.10-10.10.7.10`,
			CauseIPPoolExhausted, "host-local keeps a file per address in its dataDir"},
		{"NetworkSetupFailed", `network "t/data" (net1): plugin type="bridge" name="data" failed (add): pod t/web, network "t/data", interface net1: no IP addresses available in range 10.20.0.1-10.20.0.14/28 (pool "data/v4"): every block is claimed and none had a free address (1 looked at): try again later`,
			CauseIPPoolExhausted, "`kubectl get ipblocks`"},
		{"PlugFailed", `network "t/wb" (net2): plugin type="macvlan" failed (add): error at storage engine: Could not allocate IP in range: ip: 10.2.0.1 / - 10.2.0.2 / range: 10.2.0.0/30 / excludeRanges: []`,
			CauseIPPoolExhausted, "ippools.whereabouts.cni.cncf.io"},
		{"PlugFailed", `network "t/other" (net2): plugin type="bridge" failed (add): no IP addresses available`, CauseIPPoolExhausted, "where its IPAM plugin keeps them"},
		{"NetworkSetupFailed", `network "t/lan" (net1): multinet-dhcp: sent DHCPDISCOVER 4 times over 10s, no offer: no answer`, CauseDHCPNoServer, "DHCP server"},
		{"PlugFailed", "tuning failed", CausePlugFailed, "detach"},
		{"UnplugFailed", "macvlan DEL failed", CauseUnplugFailed, "the interface stays until DEL succeeds"},
		{"InvalidNetworkSelection", `network "t/x" not found`, CauseInvalidSelection, "correct the annotation"},
		{"NetworkSetupFailed", "bridge ADD failed", CauseSetupFailed, "the runtime retries it"},
		{"DHCPLeaseLost", "server wants the pod elsewhere", CauseMultinetWarning, "kubectl describe pod"},
		{"DeviceNotResolved", `pod t/web: network "t/fabric" (resourceName "multinet.io/fabric"): claim "t/web-nic": not allocated (device not resolved, try again later)`,
			CauseDeviceNotResolved, "allocated and reserved for the pod"},
		{"HotplugRefused", `pod t/web: network "t/fabric" is device-backed`, CauseHotplugRefused, "recreate the pod"},
	} {
		if got := classify(pod, &Warning{Reason: c.reason, Message: c.message}); got.Kind != c.want || !strings.Contains(got.Fix, c.fix) {
			t.Errorf("classify(%s %q) = %s (fix %q), want %s with a fix saying %q", c.reason, c.message, got.Kind, got.Fix, c.want, c.fix)
		}
	}
}

func TestMatchStatus(t *testing.T) {
	st := []nadv1.NetworkStatus{{Name: "cluster", Interface: "eth0"}, {Name: "t/blue", Interface: "net1"},
		{Name: "t/blue", Interface: "b0"}, {Name: "t/red", Interface: "net3"}}
	for _, c := range []struct {
		name       string
		elems      []nadv1.NetworkSelectionElement
		match, ext []int
	}{
		{"named first, unnamed takes the rest", []nadv1.NetworkSelectionElement{{Namespace: "t", Name: "blue"}, {Namespace: "t", Name: "blue", InterfaceRequest: "b0"}},
			[]int{1, 2}, []int{3}},
		{"pending plug", []nadv1.NetworkSelectionElement{{Namespace: "t", Name: "red"}, {Namespace: "t", Name: "green"}},
			[]int{3, -1}, []int{1, 2}},
		{"wrong interface is not a match", []nadv1.NetworkSelectionElement{{Namespace: "t", Name: "red", InterfaceRequest: "r0"}},
			[]int{-1}, []int{1, 2, 3}},
	} {
		match, ext := matchStatus(c.elems, st)
		if !slices.Equal(match, c.match) || !slices.Equal(ext, c.ext) {
			t.Errorf("%s: matchStatus = %v, %v; want %v, %v", c.name, match, ext, c.match, c.ext)
		}
	}
}

func TestFailureIsAboutTheEdit(t *testing.T) {
	f := failure{reason: "PlugFailed", about: []string{`"t/green"`}}
	for _, c := range []struct {
		reason, message string
		want            bool
	}{
		{"PlugFailed", `pod t/hp: network "t/green" (net3): plugin type="bridge" failed (add): ...`, true},
		{"PlugFailed", `pod t/hp: network "t/fixme" (net2): plugin type="tuning" failed (add): ...`, false},
		{"PlugFailed", `pod t/hp: network "t/greenish" (net2): ...`, false},
		{"InvalidNetworkSelection", `pod t/hp: network "t/other" not found`, true},
		{"UnplugFailed", `pod t/hp: unplug: network "t/green" (net3): ...`, false},
	} {
		if got := f.is(&corev1.Event{Reason: c.reason, Message: c.message}); got != c.want {
			t.Errorf("failure about t/green: is(%s %q) = %t, want %t", c.reason, c.message, got, c.want)
		}
	}
}
