package ipam

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os/exec"
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
	return daemonAt(t, Path, reply)
}

// daemonAt answers POST path on a unix socket with reply, recording the request.
func daemonAt(t *testing.T, path string, reply cniapi.Response) (string, *cniapi.Request) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	got := &cniapi.Request{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
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
	if err := Forward(t.Context(), "ADD", args, sock, &out); err != nil {
		t.Fatal(err)
	}
	if got.Command != "ADD" || got.IfName != "net1" || got.Netns != "/run/netns/x" || !strings.Contains(out.String(), `"ips"`) {
		t.Errorf("sent %+v, printed %q", got, out.String())
	}

	sock2, _ := daemon(t, cniapi.Response{Error: &types.Error{Code: 11, Msg: "sent DHCPDISCOVER 3 times over 10s, no offer"}})
	err := Forward(t.Context(), "ADD", args, sock2, &out)
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

func TestSocketRule(t *testing.T) {
	for _, c := range []struct {
		name, stdin, env, want string
	}{
		{"the NAD's key wins over the environment", `{"ipam":{"type":"multinet-ipam","socket":"/nad.sock"}}`, "/env.sock", "/nad.sock"},
		{"the NAD's key alone", `{"ipam":{"socket":"/nad.sock"}}`, "", "/nad.sock"},
		{"the environment without a key", `{"ipam":{"type":"multinet-dhcp"}}`, "/env.sock", "/env.sock"},
		{"an empty key is no key", `{"ipam":{"socket":""}}`, "/env.sock", "/env.sock"},
		{"neither: the default", `{"ipam":{}}`, "", cniapi.DefaultSocket},
		{"unparsable config: the environment", `{"ipam":`, "/env.sock", "/env.sock"},
		{"unparsable config, no environment: the default", `not json`, "", cniapi.DefaultSocket},
	} {
		if got := Socket([]byte(c.stdin), c.env); got != c.want {
			t.Errorf("%s: Socket(%s, %q) = %q, want %q", c.name, c.stdin, c.env, got, c.want)
		}
	}
}

// TestPluginsTakeTheNADSocket runs both plugin binaries as a runtime would, with
// $MULTINET_SOCKET and the NAD's ipam "socket" naming two different daemons: the NAD's wins,
// and without it the environment's.
func TestPluginsTakeTheNADSocket(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../../../cmd/multinet-dhcp", "../../../cmd/multinet-ipam")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the plugins: %v: %s", err, out)
	}
	for _, p := range []Plugin{DHCP, Cluster} {
		ok := cniapi.Response{Result: json.RawMessage(`{"cniVersion":"1.0.0","ips":[]}`)}
		nadSock, fromNAD := daemonAt(t, p.Path, ok)
		envSock, fromEnv := daemonAt(t, p.Path, ok)
		for _, c := range []struct {
			key     string
			want    *cniapi.Request
			wantWho string
		}{
			{`,"socket":"` + nadSock + `"`, fromNAD, "the NAD's socket"},
			{``, fromEnv, "$MULTINET_SOCKET"},
		} {
			*fromNAD, *fromEnv = cniapi.Request{}, cniapi.Request{}
			cmd := exec.Command(filepath.Join(bin, p.Name))
			cmd.Env = []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=c1", "CNI_NETNS=/run/netns/x", "CNI_IFNAME=net1",
				"CNI_PATH=" + bin, SocketEnv + "=" + envSock}
			cmd.Stdin = strings.NewReader(`{"cniVersion":"1.0.0","name":"n","type":"macvlan","ipam":{"type":"` + p.Name + `"` + c.key + `}}`)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s ADD: %v: %s", p.Name, err, out)
			}
			if c.want.Command != "ADD" || fromNAD.Command != "" && fromEnv.Command != "" {
				t.Errorf("%s with ipam %q: the NAD's daemon got %q, the environment's %q; want only %s",
					p.Name, c.key, fromNAD.Command, fromEnv.Command, c.wantWho)
			}
		}
	}
}
