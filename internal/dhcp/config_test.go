package dhcp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/multinet/multinet/internal/cniapi"
)

func TestDecodeAcceptsReferencePluginFields(t *testing.T) {
	conf := `{"cniVersion":"0.3.1","name":"macvlan-conf-2","type":"bridge","bridge":"br9",
		"ipam":{"type":"multinet-dhcp","daemonSocketPath":"/run/cni/dhcp.sock","priority":10,
		"provide":[{"option":"host-name","fromArg":"K8S_POD_NAME"},{"option":"60","value":"multinet"}],
		"request":[{"option":"42","skipDefault":false}],"routes":[{"dst":"192.168.0.0/16","gw":"192.168.0.1"}],
		"timeout":"3s","router":"subnet"}}`
	req, err := decode(&cniapi.Request{Config: []byte(conf), ContainerID: "c1", IfName: "net1",
		Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web;K8S_POD_UID=6f1d9c7e-1b2a-4c3d-8e9f-0a1b2c3d4e5f;MULTINET_NETWORK=ns/lan"})
	if err != nil {
		t.Fatal(err)
	}
	if req.network != "ns/lan" || req.pod.String() != "ns/web" || req.bridge != "br9" || req.conf.Timeout.Duration != 3*time.Second ||
		req.conf.Retries != DefaultRetries || req.conf.Router != RouterSubnet || req.conf.Priority != 10 {
		t.Errorf("decoded %+v conf %+v", req, req.conf)
	}
	id, err := identityFor(req)
	if err != nil {
		t.Fatal(err)
	}
	if id.Hostname != "web" || string(id.Extra[60]) != "multinet" || len(id.Request) != 1 || id.Request[0] != 42 {
		t.Errorf("identity %+v", id)
	}
	want := []byte{255}
	if !bytes.HasPrefix(id.ClientID, want) || len(id.ClientID) != 1+4+2+16 ||
		!bytes.HasSuffix(id.ClientID, []byte{0x6f, 0x1d, 0x9c, 0x7e, 0x1b, 0x2a, 0x4c, 0x3d, 0x8e, 0x9f, 0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f}) {
		t.Errorf("client-id %x: want RFC 4361 (ff, IAID, DUID-UUID of the pod UID)", id.ClientID)
	}
	other := clientID("6f1d9c7e-1b2a-4c3d-8e9f-0a1b2c3d4e5f", "net2")
	if bytes.Equal(other, id.ClientID) {
		t.Error("two interfaces of a pod share a client-id")
	}
}

func TestDecodeRejectsBadConfig(t *testing.T) {
	for conf, want := range map[string]string{
		`{"name":"n"}`: `network "n" has no ipam section`,
		`{"name":"n","ipam":{"type":"multinet-dhcp","router":"always"}}`:          `network "n": ipam: router "always"`,
		`{"name":"n","ipam":{"type":"multinet-dhcp","timeout":"soon"}}`:           `network "n": ipam: duration "soon"`,
		`{"name":"n","ipam":{"type":"multinet-dhcp","renewAfter":true}}`:          `network "n": ipam: duration true`,
		`{"name":"n","ipam":{"type":"multinet-dhcp","timeout":"1h"}}`:             "at most 2m0s",
		`{"name":"n","ipam":{"type":"multinet-dhcp","provide":[{"option":"x"}]}}`: `option "x"`,
		`{"name":"n","ipam":{"type":"multinet-dhcp","rotuer":"default"}}`:         `network "n": ipam: unknown key "rotuer"`,
		`{"name":"n","ipam":{"type":"multinet-dhcp","subnet":"10.0.0.0/24"}}`:     `network "n": ipam: unknown key "subnet"`,
		`{"name":"n","ipam":["multinet-dhcp"]}`:                                   `network "n": ipam: json: cannot unmarshal array`,
	} {
		_, err := decode(&cniapi.Request{Config: []byte(conf)})
		if err == nil || !errors.Is(err, errBadConf) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one saying %q", conf, err, want)
		}
	}
}

// TestDecodeNamesTheNADOfABadConfig: a fault names the NAD multinet runs the plugin for, not
// only the conf's name.
func TestDecodeNamesTheNADOfABadConfig(t *testing.T) {
	conf := `{"name":"lan","type":"macvlan","ipam":{"type":"multinet-dhcp","rotuer":"default"}}`
	_, err := decode(&cniapi.Request{Config: []byte(conf), Args: "MULTINET_NETWORK=shop/lan"})
	if want := `network "shop/lan": ipam: unknown key "rotuer"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want one saying %q", err, want)
	}
}

// TestDecodeAcceptsEveryDocumentedKey: the fields of docs/dhcp.md, matched regardless of case
// as encoding/json matches them.
func TestDecodeAcceptsEveryDocumentedKey(t *testing.T) {
	conf := `{"name":"n","ipam":{"type":"multinet-dhcp","router":"default","timeout":5,"retries":2,
		"routes":[],"clientID":"c","hostname":"h","socket":"/s","renewAfter":"1s","priority":1,"provide":[],
		"request":[],"daemonSocketPath":"/d","ClientId":"c2"}}`
	req, err := decode(&cniapi.Request{Config: []byte(conf)})
	if err != nil {
		t.Fatal(err)
	}
	if req.conf.Router != RouterDefault || req.conf.Timeout.Duration != 5*time.Second || req.conf.ClientID != "c2" {
		t.Errorf("conf %+v", req.conf)
	}
}

func TestLeaseTimes(t *testing.T) {
	a, err := dhcpv4.New(dhcpv4.WithYourIP([]byte{10, 40, 0, 7}), dhcpv4.WithLeaseTime(120))
	if err != nil {
		t.Fatal(err)
	}
	bound := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &Lease{}
	l.setACK(a, bound)
	t1, t2, exp := l.times()
	if t1.Sub(bound) != time.Minute || t2.Sub(bound) != 105*time.Second || exp.Sub(bound) != 2*time.Minute {
		t.Errorf("T1 %s T2 %s expiry %s", t1.Sub(bound), t2.Sub(bound), exp.Sub(bound))
	}
	for at, want := range map[time.Duration]phase{30 * time.Second: bound0, 70 * time.Second: renewing,
		110 * time.Second: rebinding, 3 * time.Minute: expired} {
		if got := l.phaseAt(bound.Add(at)); got != want {
			t.Errorf("at %s: %s, want %s", at, got, want)
		}
	}
	if l.retryFloor() != 10*time.Second {
		t.Errorf("retry floor %s, want 10s", l.retryFloor())
	}
	l.RenewAfter.Duration = 2 * time.Second
	if t1, _, _ := l.times(); t1.Sub(bound) != 2*time.Second {
		t.Errorf("renewAfter: T1 at %s", t1.Sub(bound))
	}
	if got := l.retryAfter(bound.Add(100*time.Second), time.Second); got != 2500*time.Millisecond {
		t.Errorf("retry in rebinding after %s, want half the time to expiry", got)
	}
}

const bound0 = bound
