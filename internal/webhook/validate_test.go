package webhook

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/netconf"
	"github.com/multinet/multinet/internal/policy/spec"
	"github.com/multinet/multinet/internal/selection"
)

func nad(config string) *nadv1.NetworkAttachmentDefinition {
	return &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "storage"},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: config},
	}
}

// TestCheckNAD: spec.config is judged by netconf.Parse, the daemon's parser; a refusal is the
// object, the field and the parser's own words.
func TestCheckNAD(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		wantErr      string // the whole refusal; "" for admitted
		wantWarning  string // a part of the only warning; "" for none
	}{
		{name: "conf", config: `{"cniVersion":"1.0.0","type":"macvlan","master":"eth0","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}`},
		{name: "conflist", config: `{"cniVersion":"1.0.0","name":"storage","plugins":[{"type":"bridge"},{"type":"tuning"}]}`},
		{name: "dhcp ipam without a type key left to the plugin", config: `{"type":"macvlan","ipam":{}}`},
		{name: "empty config names a node conf", config: "  \n", wantWarning: `reads the CNI conf with network name "storage"`},
		{name: "plugin type is a path", config: `{"name":"storage","plugins":[{"type":"bridge"},{"type":"../x"}]}`,
			wantErr: `NetworkAttachmentDefinition team-a/storage: spec.config: plugin 2: type "../x": must be a plain binary name, not a path`},
		{name: "conf type is a path", config: `{"type":"/usr/bin/evil"}`,
			wantErr: `NetworkAttachmentDefinition team-a/storage: spec.config: type "/usr/bin/evil": must be a plain binary name, not a path`},
		{name: "ipam type with dots", config: `{"type":"macvlan","ipam":{"type":"..host-local"}}`,
			wantErr: `NetworkAttachmentDefinition team-a/storage: spec.config: ipam: type "..host-local": must be a plain binary name, without ".."`},
		{name: "ipam not an object", config: `{"type":"macvlan","ipam":"host-local"}`,
			wantErr: `NetworkAttachmentDefinition team-a/storage: spec.config: "ipam" must be a JSON object`},
		{name: "bad JSON", config: `{"type":"macvlan",`,
			wantErr: `NetworkAttachmentDefinition team-a/storage: spec.config: invalid JSON at offset 18`},
		{name: "no type", config: `{"cniVersion":"1.0.0"}`,
			wantErr: `NetworkAttachmentDefinition team-a/storage: spec.config: missing "type" (a conf needs "type", a conflist "plugins")`},
		{name: "empty plugin list", config: `{"plugins":[]}`,
			wantErr: `NetworkAttachmentDefinition team-a/storage: spec.config: "plugins" is empty`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			warnings, err := CheckNAD(nad(tc.config))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Fatalf("error %v\nwant %q", err, tc.wantErr)
			}
			if tc.wantWarning == "" && len(warnings) > 0 || tc.wantWarning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.wantWarning)) {
				t.Errorf("warnings %q, want one holding %q", warnings, tc.wantWarning)
			}
		})
	}
	for _, tc := range []struct{ value, warning string }{
		{"multinet.io/fabric", ""},
		{" ", "is empty"},
		{strings.Repeat("x", 65), "65 characters long: no DRA device can carry it"},
	} {
		n := nad(`{"type":"host-device"}`)
		n.Annotations = map[string]string{"k8s.v1.cni.cncf.io/resourceName": tc.value}
		warnings, err := CheckNAD(n)
		if err != nil || (tc.warning == "") != (len(warnings) == 0) || (tc.warning != "" && !strings.Contains(warnings[0], tc.warning)) {
			t.Errorf("resourceName %q: warnings %q, err %v; want a warning holding %q", tc.value, warnings, err, tc.warning)
		}
	}
	var te *netconf.TypeError
	if _, err := CheckNAD(nad(`{"type":"a/b"}`)); !errors.As(err, &te) {
		t.Errorf("error %v does not unwrap to the parser's *netconf.TypeError", err)
	}
}

// TestCheckPod: the networks annotation (or its alias) and the default-network override are
// judged by the selection package; every NAD named is returned once, for the existence check.
func TestCheckPod(t *testing.T) {
	const (
		nets  = selection.NetworksAnnotation
		alias = selection.AliasNetworksAnnotation
		def   = selection.DefaultNetworkAnnotation
	)
	pod := Object{Kind: "Pod", Namespace: "team-a", Name: "web-0"}
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		wantRefs    string // refs joined by ","
		wantErr     string
		wantWarning string
	}{
		{name: "none", annotations: map[string]string{"other": "x"}},
		{name: "text form", annotations: map[string]string{nets: "storage, other/fast@eth9,storage"},
			wantRefs: "team-a/storage,other/fast"},
		{name: "JSON form", annotations: map[string]string{nets: `[{"name":"storage","interface":"net5","ips":["10.1.0.5/24"]}]`},
			wantRefs: "team-a/storage"},
		{name: "alias", annotations: map[string]string{alias: "storage"}, wantRefs: "team-a/storage"},
		{name: "both keys: the alias is ignored", annotations: map[string]string{nets: "storage", alias: "not valid@@"},
			wantRefs: "team-a/storage", wantWarning: "annotation alpha.network.k8s.io/networks is ignored"},
		{name: "default network", annotations: map[string]string{def: "infra/underlay", nets: "storage"},
			wantRefs: "team-a/storage,infra/underlay"},
		{name: "interface name too long", annotations: map[string]string{nets: `[{"name":"storage"},{"name":"fast","interface":"this-name-is-too-long"}]`},
			wantErr: `Pod team-a/web-0: metadata.annotations[k8s.v1.cni.cncf.io/networks]: network selection element 2 ("team-a/fast"): interface "this-name-is-too-long": longer than 15 bytes`},
		{name: "bad JSON", annotations: map[string]string{nets: `[{"name":"storage"`},
			wantErr: `Pod team-a/web-0: metadata.annotations[k8s.v1.cni.cncf.io/networks]: not a valid JSON list nor a comma-separated list`},
		{name: "a JSON object", annotations: map[string]string{nets: `{"name":"storage"}`},
			wantErr: `Pod team-a/web-0: metadata.annotations[k8s.v1.cni.cncf.io/networks]: a JSON object, not a list: put the element in a list, [{...}]`},
		{name: "bad alias", annotations: map[string]string{alias: `[{"name":"storage","mac":"zz"}]`},
			wantErr: `Pod team-a/web-0: metadata.annotations[alpha.network.k8s.io/networks]: network selection element 1 ("team-a/storage"): mac "zz"`},
		{name: "default network with an interface", annotations: map[string]string{def: "underlay@eth1"},
			wantErr: `Pod team-a/web-0: metadata.annotations[v1.multus-cni.io/default-network]: network selection element 1 ("underlay@eth1"): interface "eth1": not allowed`},
		{name: "two default networks", annotations: map[string]string{def: "a,b"},
			wantErr: `Pod team-a/web-0: metadata.annotations[v1.multus-cni.io/default-network]: only one default network may be given`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := CheckPod(pod, tc.annotations)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v\nwant one starting %q", err, tc.wantErr)
			}
			var refs []string
			for _, r := range c.Refs {
				refs = append(refs, r.String())
			}
			if got := strings.Join(refs, ","); got != tc.wantRefs {
				t.Errorf("refs %q, want %q", got, tc.wantRefs)
			}
			if tc.wantWarning == "" && len(c.Warnings) > 0 || tc.wantWarning != "" && (len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], tc.wantWarning)) {
				t.Errorf("warnings %q, want one holding %q", c.Warnings, tc.wantWarning)
			}
		})
	}
}

// TestNetworksChanged: an update that leaves the three annotations as they were is not checked.
func TestNetworksChanged(t *testing.T) {
	nets := selection.NetworksAnnotation
	for _, tc := range []struct {
		name     string
		old, new map[string]string
		want     bool
	}{
		{name: "no annotations", want: false},
		{name: "other annotation changed", old: map[string]string{nets: "a", "x": "1"}, new: map[string]string{nets: "a", "x": "2"}, want: false},
		{name: "value changed", old: map[string]string{nets: "a"}, new: map[string]string{nets: "a,b"}, want: true},
		{name: "added", old: nil, new: map[string]string{nets: "a"}, want: true},
		{name: "added empty", old: nil, new: map[string]string{nets: ""}, want: true},
		{name: "removed", old: map[string]string{selection.DefaultNetworkAnnotation: "a"}, new: nil, want: true},
	} {
		if got := NetworksChanged(tc.old, tc.new); got != tc.want {
			t.Errorf("%s: NetworksChanged = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func mnp(name string, annotations map[string]string, specJSON string) *spec.MultiNetworkPolicy {
	p := &spec.MultiNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name, Annotations: annotations}}
	if err := json.Unmarshal([]byte(specJSON), &p.Spec); err != nil {
		panic(err)
	}
	return p
}

// TestCheckPolicy: a MultiNetworkPolicy is judged by spec.Parse, multinetd's parser; a refusal
// is the object and the parser's faults, each with its field; a policy for no network is
// admitted with a warning.
func TestCheckPolicy(t *testing.T) {
	const forKey = spec.PolicyForAnnotation
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		spec        string
		wantRefs    string
		wantErr     string
		wantWarning string
	}{
		{name: "good", annotations: map[string]string{forKey: "storage, infra/fast,storage"},
			spec:     `{"podSelector":{},"ingress":[{"ports":[{"port":8000,"endPort":8080}]}]}`,
			wantRefs: "infra/fast,team-a/storage"},
		{name: "no annotation", spec: `{"podSelector":{}}`,
			wantWarning: `MultiNetworkPolicy team-a/p: annotation k8s.v1.cni.cncf.io/policy-for is missing: the policy applies to no network`},
		{name: "empty annotation", annotations: map[string]string{forKey: ""}, spec: `{"podSelector":{}}`,
			wantWarning: `annotation k8s.v1.cni.cncf.io/policy-for is empty: the policy applies to no network`},
		{name: "except outside cidr", annotations: map[string]string{forKey: "storage"},
			spec:    `{"podSelector":{},"ingress":[{"from":[{"podSelector":{}},{"ipBlock":{"cidr":"10.2.0.0/16","except":["10.1.0.0/16"]}}]}]}`,
			wantErr: `MultiNetworkPolicy team-a/p: spec.ingress[0].from[1].ipBlock.except[0]: "10.1.0.0/16" is not inside cidr "10.2.0.0/16"`},
		{name: "bad annotation and bad port", annotations: map[string]string{forKey: "a/b/c"},
			spec: `{"podSelector":{},"egress":[{"ports":[{"port":"http","endPort":90}]}]}`,
			wantErr: `MultiNetworkPolicy team-a/p: metadata.annotations[k8s.v1.cni.cncf.io/policy-for]: entry 1: "a/b/c": not name nor namespace/name; ` +
				`spec.egress[0].ports[0].endPort: endPort 90 with the named port "http": a range needs a port number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := CheckPolicy(mnp("p", tc.annotations, tc.spec))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Fatalf("error %v\nwant %q", err, tc.wantErr)
			}
			var refs []string
			for _, r := range c.Refs {
				refs = append(refs, r.String())
			}
			if got := strings.Join(refs, ","); got != tc.wantRefs {
				t.Errorf("refs %q, want %q", got, tc.wantRefs)
			}
			if tc.wantWarning == "" && len(c.Warnings) > 0 || tc.wantWarning != "" && (len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], tc.wantWarning)) {
				t.Errorf("warnings %q, want one holding %q", c.Warnings, tc.wantWarning)
			}
		})
	}
	var se *spec.Error
	if _, err := CheckPolicy(mnp("p", nil, `{"podSelector":{},"policyTypes":["Up"]}`)); !errors.As(err, &se) || len(se.Faults) != 1 {
		t.Errorf("error %v does not unwrap to the parser's *spec.Error", err)
	}
	c, err := CheckPolicy(mnp("", nil, `{"podSelector":{}}`))
	if err != nil || len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], "MultiNetworkPolicy team-a/*: ") {
		t.Errorf("policy without a name: %v %q", err, c.Warnings)
	}
}
