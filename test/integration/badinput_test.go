package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/testbed"
)

// rawRequest sends a request to the daemon's socket as any local root process could.
func (e *env) rawRequest(t *testing.T, req cniapi.Request) cniapi.Response {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.Socket)
	}}}
	body, _ := json.Marshal(req)
	resp, err := client.Post("http://multinetd"+cniapi.Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the daemon did not answer %+v: %v\n%s", req, err, e.Log())
	}
	defer resp.Body.Close()
	var out cniapi.Response
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func testBadInput(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	e.threeNetworks(t)
	healthy := e.attached(t, "healthy")
	conf := []byte(`{"cniVersion":"1.0.0","name":"multinet","type":"multinet"}`)
	args := "K8S_POD_NAMESPACE=" + e.ns + ";K8S_POD_NAME=healthy"
	cases := []struct {
		name string
		req  cniapi.Request
		want string
	}{
		{"no container ID", cniapi.Request{Command: "ADD", Netns: "/x", IfName: "eth0", Config: conf}, "CNI_CONTAINERID is required"},
		{"path-escaping container ID", cniapi.Request{Command: "DEL", ContainerID: "../../etc/passwd", IfName: "eth0", Config: conf}, "invalid container ID"},
		{"CNI_ARGS not KEY=VALUE", cniapi.Request{Command: "ADD", ContainerID: "c1", Netns: "/x", IfName: "eth0", Args: "garbage", Config: conf}, "not KEY=VALUE"},
		{"config not JSON", cniapi.Request{Command: "ADD", ContainerID: "c1", Netns: "/x", IfName: "eth0", Config: []byte(`"x"`)}, "stdin"},
		{"stale sandbox UID", cniapi.Request{Command: "ADD", ContainerID: "c2", Netns: healthy.Netns.Path(), IfName: "eth0",
			Args: args + ";K8S_POD_UID=not-the-uid", Config: conf}, "stale sandbox"},
		{"CHECK of an unknown sandbox", cniapi.Request{Command: "CHECK", ContainerID: "c3", Netns: "/x", IfName: "eth0", Config: conf}, "no checkpoint record"},
	}
	for _, c := range cases {
		resp := e.rawRequest(t, c.req)
		if resp.Error == nil || !strings.Contains(resp.Error.Msg, c.want) {
			t.Errorf("%s: reply %+v, want an error mentioning %q", c.name, resp.Error, c.want)
		}
	}
	// A pod whose annotation is malformed: a CNI error and an Event naming the fault.
	bad := e.NewSandbox(t, e.ns, "bad", map[string]string{networks: `[{"name":"blue","interface":"this-name-is-too-long"}]`})
	if _, err := e.Add(t, bad); err == nil || !strings.Contains(err.Error(), "longer than 15 bytes") {
		t.Errorf("ADD with a too-long interface name = %v", err)
	}
	evs := e.WaitEvent(t, bad.Pod, "InvalidNetworkSelection")
	if !strings.Contains(evs[len(evs)-1].Message, "this-name-is-too-long") {
		t.Errorf("event %q does not name the interface", evs[len(evs)-1].Message)
	}
	// Nothing of that disturbed the healthy pod: its record and addresses are intact.
	if err := e.Check(t, healthy); err != nil {
		t.Fatalf("CHECK of the healthy pod after bad requests: %v", err)
	}
	e.MustDel(t, healthy)
	e.MustDel(t, bad)
	e.assertClean(t)
}
