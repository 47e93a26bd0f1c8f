package ipam

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/cniapi"
)

// daemon answers POST /dhcp on a unix socket with reply, recording the request.
func daemon(t *testing.T, reply cniapi.Response) (string, *cniapi.Request) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	got := &cniapi.Request{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != Path {
			http.NotFound(w, r)
			return
		}
		_ = json.NewDecoder(r.Body).Decode(got)
		_ = json.NewEncoder(w).Encode(reply)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock, got
}

func TestForwardRelaysResultAndErrors(t *testing.T) {
	sock, got := daemon(t, cniapi.Response{Result: json.RawMessage(`{"cniVersion":"1.0.0","ips":[]}`)})
	args := &skel.CmdArgs{ContainerID: "c1", Netns: "/run/netns/x", IfName: "net1", Args: "K8S_POD_NAME=p",
		StdinData: []byte(`{"name":"n","ipam":{"type":"multinet-dhcp","socket":"` + sock + `"}}`)}
	var out bytes.Buffer
	if err := Forward(t.Context(), "ADD", args, "", &out); err != nil {
		t.Fatal(err)
	}
	if got.Command != "ADD" || got.IfName != "net1" || got.Netns != "/run/netns/x" || !strings.Contains(out.String(), `"ips"`) {
		t.Errorf("sent %+v, printed %q", got, out.String())
	}

	sock2, _ := daemon(t, cniapi.Response{Error: &types.Error{Code: 11, Msg: "sent DHCPDISCOVER 3 times over 10s, no offer"}})
	err := Forward(t.Context(), "ADD", args, sock2, &out) // the environment's socket wins over the config's
	var te *types.Error
	if !errors.As(err, &te) || te.Code != 11 || !strings.Contains(te.Msg, "DHCPDISCOVER") {
		t.Errorf("error %v, want the daemon's CNI error", err)
	}
}

func TestForwardDaemonDownIsRetriable(t *testing.T) {
	args := &skel.CmdArgs{ContainerID: "c1", IfName: "net1", StdinData: []byte(`{"name":"n","ipam":{"type":"multinet-dhcp"}}`)}
	err := Forward(t.Context(), "ADD", args, filepath.Join(t.TempDir(), "none.sock"), &bytes.Buffer{})
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrTryAgainLater || !strings.Contains(te.Msg, "multinetd is not reachable") {
		t.Errorf("error %v, want try-again-later naming multinetd", err)
	}
	err = Forward(t.Context(), "STATUS", args, filepath.Join(t.TempDir(), "none.sock"), &bytes.Buffer{})
	if !errors.As(err, &te) || te.Code != errPluginNotAvailable {
		t.Errorf("STATUS with the daemon down: %v, want code 50", err)
	}
}

func TestSocketFromConf(t *testing.T) {
	if s := socketFromConf([]byte(`{"ipam":{}}`)); s != cniapi.DefaultSocket {
		t.Errorf("default socket %q", s)
	}
}
