package selection

import (
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

type elem = nadv1.NetworkSelectionElement

func TestParseAcceptsEveryForm(t *testing.T) {
	cniArgs := map[string]interface{}{"foo": "bar", "n": float64(3)}
	tests := []struct {
		name  string
		value string
		want  []elem
	}{
		{"empty value", "", nil},
		{"blank value", "  \t ", nil},
		{"empty JSON list", "[]", nil},
		{"name", "net-a", []elem{{Name: "net-a", Namespace: "pods"}}},
		{"namespace/name", "other/net-b", []elem{{Name: "net-b", Namespace: "other"}}},
		{"name@ifname", "net-a@eth9", []elem{{Name: "net-a", Namespace: "pods", InterfaceRequest: "eth9"}}},
		{"namespace/name@ifname", "other/net-b@eth9",
			[]elem{{Name: "net-b", Namespace: "other", InterfaceRequest: "eth9"}}},
		{"comma list with whitespace", " net-a , other/net-b@eth9 ,net.c ", []elem{
			{Name: "net-a", Namespace: "pods"},
			{Name: "net-b", Namespace: "other", InterfaceRequest: "eth9"},
			{Name: "net.c", Namespace: "pods"},
		}},
		{"same network twice", "net-a,net-a", []elem{
			{Name: "net-a", Namespace: "pods"}, {Name: "net-a", Namespace: "pods"},
		}},
		{"JSON minimal", `[{"name":"net-a"}]`, []elem{{Name: "net-a", Namespace: "pods"}}},
		{"JSON with whitespace", " \n[ {\"name\": \"net-a\"} ]\n", []elem{{Name: "net-a", Namespace: "pods"}}},
		{"JSON empty namespace takes the pod's", `[{"name":"net-a","namespace":""}]`,
			[]elem{{Name: "net-a", Namespace: "pods"}}},
		{"JSON every field", `[{"name":"net-a","namespace":"other","interface":"eth9",
			"ips":["10.1.1.5/24","fd00::5","10.2.2.2"],"mac":"02:00:00:00:00:05",
			"infiniband-guid":"c2:11:22:33:44:55:66:77",
			"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"10.0.0.1"}],
			"bandwidth":{"ingressRate":100,"ingressBurst":10,"egressRate":0,"egressBurst":0},
			"cni-args":{"foo":"bar","n":3},"default-route":["10.1.1.1","fd00::1"]}]`,
			[]elem{{
				Name: "net-a", Namespace: "other", InterfaceRequest: "eth9",
				IPRequest:             []string{"10.1.1.5/24", "fd00::5", "10.2.2.2"},
				MacRequest:            "02:00:00:00:00:05",
				InfinibandGUIDRequest: "c2:11:22:33:44:55:66:77",
				PortMappingsRequest: []*nadv1.PortMapEntry{
					{HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "10.0.0.1"}},
				BandwidthRequest: &nadv1.BandwidthEntry{IngressRate: 100, IngressBurst: 10},
				CNIArgs:          &cniArgs,
				GatewayRequest:   []net.IP{net.ParseIP("10.1.1.1"), net.ParseIP("fd00::1")},
			}}},
		{"JSON ipam claim", `[{"name":"net-a","ipam-claim-reference":"claim-1"}]`,
			[]elem{{Name: "net-a", Namespace: "pods", IPAMClaimReference: "claim-1"}}},
		// Refused by the NAD client v1.7.5, accepted since v1.7.6 (as by Multus built with it).
		{"JSON ips and ipam claim", `[{"name":"a","ips":["10.0.0.1"],"ipam-claim-reference":"c"}]`,
			[]elem{{Name: "a", Namespace: "pods", IPRequest: []string{"10.0.0.1"}, IPAMClaimReference: "c"}}},
		{"JSON empty default-route list is no default route",
			`[{"name":"a","default-route":[]},{"name":"b","default-route":["10.0.0.1"]}]`, []elem{
				{Name: "a", Namespace: "pods"},
				{Name: "b", Namespace: "pods", GatewayRequest: []net.IP{net.ParseIP("10.0.0.1")}},
			}},
		{"JSON unknown fields ignored", `[{"name":"net-a","colour":"blue"}]`,
			[]elem{{Name: "net-a", Namespace: "pods"}}},
		{"20-byte infiniband MAC", `[{"name":"ib","mac":"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"}]`,
			[]elem{{Name: "ib", Namespace: "pods", MacRequest: "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.value, "pods")
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.value, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.value, got, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		name      string
		value     string
		index     int
		field     string
		errSubstr string
	}{
		{"bad JSON", `[{"name":"a"`, 0, "", "not a valid JSON list nor a comma-separated list"},
		{"bad JSON offset", `[{"name":"a"}x]`, 0, "", "offset"},
		{"JSON object", `{"name":"a"}`, 0, "", "a JSON object, not a list"},
		{"JSON element not an object", `["net-a"]`, 1, "", "not a valid network selection element"},
		{"JSON bad field type", `[{"name":"a"},{"name":"b","ips":"10.0.0.1"}]`, 2, "", `("b")`},
		{"JSON null element", `[null]`, 1, "name", "must not be empty"},
		{"JSON empty name", `[{"namespace":"x"}]`, 1, "name", "must not be empty"},
		{"empty item", "a,,b", 2, "", "empty item"},
		{"trailing comma", "a,", 2, "", "empty item"},
		{"empty name after slash", "ns/", 1, "name", "must not be empty"},
		{"empty namespace", "/name", 1, "", "empty namespace"},
		{"two slashes", "a/b/c", 1, "", `more than one "/"`},
		{"two ats", "a@b@c", 1, "", `more than one "@"`},
		{"empty ifname", "net-a@", 1, "", `"@" without an interface name`},
		{"upper-case name", "Net-A", 1, "name", "not a valid object name"},
		{"name with space", "net a", 1, "name", "not a valid object name"},
		{"name too long", strings.Repeat("a", 254), 1, "name", "not a valid object name"},
		{"namespace with dot", "a.b/net", 1, "namespace", "not a valid namespace name"},
		{"namespace too long", long + "/net", 1, "namespace", "not a valid namespace name"},
		{"interface too long", "net1/storage@this-name-is-too-long", 1, "interface", "longer than 15 bytes"},
		{"interface with colon", "a@eth0:1", 1, "interface", "must not contain ':'"},
		{"interface with slash", "a@b/c", 1, "interface", "must not contain '/'"},
		{"interface dotdot", `[{"name":"a","interface":".."}]`, 1, "interface", `must not be "." or ".."`},
		{"interface whitespace", `[{"name":"a","interface":"et h0"}]`, 1, "interface", "whitespace"},
		{"interface template", "a@net%d", 1, "interface", "must not contain '%'"},
		{"interface non-ASCII", "a@eth\u00e9x", 1, "interface", "printable ASCII"},
		{"duplicate interface", "a@eth1,b,c@eth1", 3, "interface", "already requested by element 1"},
		{"duplicate interface JSON", `[{"name":"a","interface":"x"},{"name":"b","interface":"x"}]`, 2, "interface", "element 1"},
		{"bad MAC", `[{"name":"a","mac":"02:00:00:00:00"}]`, 1, "mac", "not a MAC address"},
		{"multicast MAC", `[{"name":"a","mac":"01:00:5e:00:00:01"}]`, 1, "mac", "multicast"},
		{"zero MAC", `[{"name":"a","mac":"00:00:00:00:00:00"}]`, 1, "mac", "all zeros"},
		{"bad IP", `[{"name":"a","ips":["10.0.0.1/24","10.0.0.300"]}]`, 1, "ips[2]", "not an IP address nor a CIDR"},
		{"bad CIDR", `[{"name":"a","ips":["10.0.0.1/33"]}]`, 1, "ips[1]", "not an IP"},
		{"bad default-route", `[{"name":"a","default-route":["10.0.0.x"]}]`, 1, "", "not a valid network selection element"},
		{"empty default-route entry", `[{"name":"a","default-route":[""]}]`, 1, "default-route[1]", "empty gateway"},
		{"two IPv4 default-route gateways", `[{"name":"a","default-route":["10.0.0.1","fd00::1","10.0.0.2"]}]`, 1,
			"default-route[3]", "default-route[1] is a gateway of the same address family"},
		{"null default-route entry", `[{"name":"a","default-route":[null]}]`, 1, "default-route[1]", "empty gateway"},
		{"two default routes", `[{"name":"a","default-route":["10.0.0.1"]},{"name":"b"},{"name":"c","default-route":["10.1.0.1"]}]`,
			3, "default-route", `element 1 ("pods/a") already sets the default route`},
		{"host port zero", `[{"name":"a","portMappings":[{"hostPort":0,"containerPort":80}]}]`, 1, "portMappings[1].hostPort", "out of range"},
		{"container port too big", `[{"name":"a","portMappings":[{"hostPort":80,"containerPort":80},{"hostPort":81,"containerPort":65536}]}]`,
			1, "portMappings[2].containerPort", "out of range"},
		{"null port mapping", `[{"name":"a","portMappings":[null]}]`, 1, "portMappings[1]", "empty port mapping"},
		{"bad host IP", `[{"name":"a","portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"x"}]}]`, 1, "portMappings[1].hostIP", "not an IP"},
		{"negative bandwidth", `[{"name":"a","bandwidth":{"egressBurst":-1}}]`, 1, "bandwidth.egressBurst", "must not be negative"},
		{"bad ipam claim", `[{"name":"a","ipam-claim-reference":"Bad_Claim"}]`, 1, "ipam-claim-reference", "not a valid object name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.value, "pods")
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tt.value, got)
			}
			var serr *Error
			if !errors.As(err, &serr) {
				t.Fatalf("Parse(%q) error %v (%T) is not an *Error", tt.value, err, err)
			}
			if serr.Index != tt.index || serr.Field != tt.field {
				t.Errorf("Parse(%q) error at element %d field %q, want %d %q: %v",
					tt.value, serr.Index, serr.Field, tt.index, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.errSubstr) {
				t.Errorf("Parse(%q) error %q does not contain %q", tt.value, err, tt.errSubstr)
			}
		})
	}
}

func TestErrorTextNamesElementNetworkAndField(t *testing.T) {
	_, err := Parse("net-a, net1/storage@this-name-is-too-long", "pods")
	want := `network selection element 2 ("net1/storage"): interface "this-name-is-too-long": longer than 15 bytes`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
}

func TestErrorClipsLongValues(t *testing.T) {
	_, err := Parse(`[{"name":"a","mac":"`+strings.Repeat("z", 1000)+`"}]`, "pods")
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error = %v, want a short error", err)
	}
}

func TestFromAnnotations(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		want        []elem
		errSubstr   string
	}{
		{"no annotations", nil, nil, ""},
		{"unrelated annotations", map[string]string{"a": "b"}, nil, ""},
		{"NPWG key", map[string]string{NetworksAnnotation: "net-a"}, []elem{{Name: "net-a", Namespace: "pods"}}, ""},
		{"alias key", map[string]string{AliasNetworksAnnotation: "net-b"}, []elem{{Name: "net-b", Namespace: "pods"}}, ""},
		{"NPWG key wins over alias", map[string]string{NetworksAnnotation: "net-a", AliasNetworksAnnotation: "net-b"},
			[]elem{{Name: "net-a", Namespace: "pods"}}, ""},
		{"empty NPWG key still wins", map[string]string{NetworksAnnotation: "", AliasNetworksAnnotation: "net-b"}, nil, ""},
		{"error names the key", map[string]string{AliasNetworksAnnotation: "Bad"}, nil, "annotation " + AliasNetworksAnnotation + ": "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromAnnotations(tt.annotations, "pods")
			if tt.errSubstr != "" {
				var serr *Error
				if err == nil || !strings.Contains(err.Error(), tt.errSubstr) || !errors.As(err, &serr) {
					t.Fatalf("error = %v, want an *Error containing %q", err, tt.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDefaultNetwork(t *testing.T) {
	tests := []struct {
		name          string
		annotations   map[string]string
		wantNamespace string
		wantName      string
		wantOK        bool
		errSubstr     string
	}{
		{"absent", map[string]string{NetworksAnnotation: "x"}, "", "", false, ""},
		{"name", map[string]string{DefaultNetworkAnnotation: "calico"}, "pods", "calico", true, ""},
		{"namespace/name", map[string]string{DefaultNetworkAnnotation: " kube-system/calico "}, "kube-system", "calico", true, ""},
		{"empty", map[string]string{DefaultNetworkAnnotation: " "}, "", "", false, "empty"},
		{"ifname", map[string]string{DefaultNetworkAnnotation: "calico@eth1"}, "", "", false, "interface \"eth1\": not allowed"},
		{"two networks", map[string]string{DefaultNetworkAnnotation: "a,b"}, "", "", false, "only one"},
		{"JSON", map[string]string{DefaultNetworkAnnotation: `[{"name":"a"}]`}, "", "", false, "not JSON"},
		{"bad name", map[string]string{DefaultNetworkAnnotation: "a/B"}, "", "", false, "not a valid object name"},
		{"two slashes", map[string]string{DefaultNetworkAnnotation: "a/b/c"}, "", "", false, `more than one "/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, name, ok, err := DefaultNetwork(tt.annotations, "pods")
			if tt.errSubstr != "" {
				var serr *Error
				if err == nil || !strings.Contains(err.Error(), tt.errSubstr) || !errors.As(err, &serr) {
					t.Fatalf("error = %v, want an *Error containing %q", err, tt.errSubstr)
				}
				if !strings.HasPrefix(err.Error(), "annotation "+DefaultNetworkAnnotation) {
					t.Errorf("error %q does not name the annotation", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ns != tt.wantNamespace || name != tt.wantName || ok != tt.wantOK {
				t.Errorf("got (%q, %q, %v), want (%q, %q, %v)", ns, name, ok, tt.wantNamespace, tt.wantName, tt.wantOK)
			}
		})
	}
}

func TestValidateInterfaceName(t *testing.T) {
	valid := []string{"eth0", "net1", "a", "123456789012345", "eth0.100", "veth-a_b", "..."}
	for _, name := range valid {
		if err := ValidateInterfaceName(name); err != nil {
			t.Errorf("ValidateInterfaceName(%q) = %v, want nil", name, err)
		}
	}
	invalid := map[string]string{
		"":                 "must not be empty",
		"1234567890123456": "longer than 15 bytes",
		".":                `must not be "." or ".."`,
		"..":               `must not be "." or ".."`,
		"a/b":              "must not contain '/'",
		"a:b":              "must not contain ':'",
		"a b":              "whitespace",
		"a\tb":             "whitespace",
		"a\nb":             "whitespace",
		"a\x00b":           "printable ASCII",
		"a\x7fb":           "printable ASCII",
		"eth%d":            "must not contain '%'",
		"é":                "printable ASCII",
	}
	for name, reason := range invalid {
		err := ValidateInterfaceName(name)
		var ierr *InterfaceNameError
		if !errors.As(err, &ierr) || ierr.Name != name || !strings.Contains(ierr.Reason, reason) {
			t.Errorf("ValidateInterfaceName(%q) = %v, want an *InterfaceNameError saying %q", name, err, reason)
		}
	}
}
