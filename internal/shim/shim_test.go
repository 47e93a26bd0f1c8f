package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/multinet/multinet/internal/cniapi"
)

const (
	containerID = "1234abcd1234abcd1234abcd"
	podArgs     = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web;K8S_POD_UID=u"
)

// invoke runs the shim as a runtime would: CNI_* variables (ADD of pod ns/web unless
// overridden; "" unsets one), stdin; it returns the exit code and stdout.
func invoke(ctx context.Context, t *testing.T, vars map[string]string, stdin string) (int, string) {
	t.Helper()
	env := map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": containerID, "CNI_NETNS": "/run/netns/x",
		"CNI_IFNAME": "eth0", "CNI_ARGS": podArgs, "CNI_PATH": "/opt/cni/bin"}
	for k, v := range vars {
		env[k] = v
	}
	var out, errOut bytes.Buffer
	code := Run(ctx, Env{Getenv: func(k string) string { return env[k] }, Stdin: strings.NewReader(stdin),
		Stdout: &out, Stderr: &errOut}, "")
	return code, out.String()
}

// cniError decodes the CNI error the shim printed.
func cniError(t *testing.T, out string) types.Error {
	t.Helper()
	var e types.Error
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatalf("stdout is not a CNI error: %q", out)
	}
	return e
}

// TestErrorsNameThePodAndContainer: every error the shim makes itself says which pod and
// container it is about, with the code skel gives it.
func TestErrorsNameThePodAndContainer(t *testing.T) {
	const conf = `{"cniVersion":"1.0.0","name":"multinet"}`
	const who = "multinet: pod ns/web (container 1234abcd1234…): "
	for _, c := range []struct {
		name  string
		vars  map[string]string
		stdin string
		code  uint
		msg   string
	}{
		{"missing netns", map[string]string{"CNI_NETNS": ""}, conf, 4, who + "CNI_NETNS is required for ADD"},
		{"missing several", map[string]string{"CNI_NETNS": "", "CNI_PATH": ""}, conf, 4,
			who + "CNI_NETNS, CNI_PATH are required for ADD"},
		{"interface name too long", map[string]string{"CNI_IFNAME": "averyveryverylongname"}, conf, 4,
			who + `CNI_IFNAME "averyveryverylongname" is too long (15 bytes at most)`},
		{"interface name with a slash", map[string]string{"CNI_IFNAME": "a/b"}, conf, 4,
			who + `CNI_IFNAME "a/b" contains '/', ':' or white space`},
		{"unknown command", map[string]string{"CNI_COMMAND": "FOO"}, conf, 4,
			who + `unknown CNI_COMMAND "FOO" (multinet answers ADD, DEL, CHECK, GC, STATUS and VERSION)`},
		{"invalid container ID", map[string]string{"CNI_CONTAINERID": "12/34"}, conf, 4,
			`multinet: pod ns/web: CNI_CONTAINERID "12/34" has invalid characters (letters, digits, '_', '.' and '-', starting with a letter or digit)`},
		{"config not JSON", nil, `{"name":`, 6,
			who + "cannot read the network configuration on stdin: invalid JSON: unexpected end at offset 8"},
		{"config name not a string", nil, `{"name":1}`, 6,
			who + `cannot read the network configuration on stdin: field "name" is not a string`},
		{"config without a name", nil, `{"cniVersion":"1.0.0"}`, 7, who + "the network configuration on stdin has no name"},
		{"CHECK before 0.4.0", map[string]string{"CNI_COMMAND": "CHECK"}, `{"cniVersion":"0.3.1","name":"n"}`, 1,
			who + `CHECK needs cniVersion 0.4.0 or later; the network configuration has "0.3.1"`},
		{"GC before 1.1.0", map[string]string{"CNI_COMMAND": "GC"}, conf, 1,
			who + `GC needs cniVersion 1.1.0 or later; the network configuration has "1.0.0"`},
		{"unsupported version", nil, `{"cniVersion":"0.2.0","name":"n"}`, 1,
			who + `incompatible CNI versions: the network configuration has cniVersion "0.2.0"`},
		{"bad version", map[string]string{"CNI_COMMAND": "CHECK"}, `{"cniVersion":"one","name":"n"}`, 6,
			who + `the network configuration's cniVersion: "one" is not a version (major.minor.micro)`},
		{"the plugin's own netns", map[string]string{"CNI_NETNS": "/proc/self/ns/net"}, conf, 8,
			who + `CNI_NETNS "/proc/self/ns/net" is the plugin's own network namespace`},
		{"no pod", map[string]string{"CNI_ARGS": "", "CNI_NETNS": ""}, conf, 4,
			"multinet: container 1234abcd1234…: CNI_NETNS is required for ADD"},
		{"no command", map[string]string{"CNI_COMMAND": ""}, conf, 4, who + "CNI_COMMAND is required"},
		{"neither pod nor container", map[string]string{"CNI_ARGS": "", "CNI_CONTAINERID": ""}, conf, 4,
			"multinet: CNI_CONTAINERID is required for ADD"},
	} {
		code, out := invoke(context.Background(), t, c.vars, c.stdin)
		got := cniError(t, out)
		if code != 1 || got.Code != c.code || got.Msg != c.msg {
			t.Errorf("%s: exit %d, code %d, msg %q\nwant exit 1, code %d, msg %q", c.name, code, got.Code, got.Msg, c.code, c.msg)
		}
	}
}

// TestVersionIsAnsweredLocally: VERSION needs no daemon and says what skel would.
func TestVersionIsAnsweredLocally(t *testing.T) {
	code, out := invoke(context.Background(), t, map[string]string{"CNI_COMMAND": "VERSION"}, "")
	var want bytes.Buffer
	if err := version.PluginSupports(supportedVersions...).Encode(&want); err != nil {
		t.Fatal(err)
	}
	if code != 0 || out != want.String() {
		t.Errorf("VERSION: exit %d, %q; want %q", code, out, want.String())
	}
}

// TestUsageWithoutCommand: run by hand, the shim says what it is.
func TestUsageWithoutCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Run(context.Background(), Env{Getenv: func(string) string { return "" }, Stdin: strings.NewReader(""),
		Stdout: &out, Stderr: &errOut}, "multinet: about")
	if code != 0 || out.Len() != 0 || !strings.Contains(errOut.String(), "CNI protocol versions supported: 0.3.0") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}

// TestDaemonDownIsTryAgainLater: the shim waits for a daemon that is not listening (bounded
// here by the context), then answers "try again later" naming the socket.
func TestDaemonDownIsTryAgainLater(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	code, out := invoke(ctx, t, nil, `{"cniVersion":"1.0.0","name":"multinet","socket":"`+sock+`"}`)
	got := cniError(t, out)
	if code != 1 || got.Code != types.ErrTryAgainLater || !strings.Contains(got.Msg, sock) ||
		!strings.HasPrefix(got.Msg, "multinet: pod ns/web (container 1234abcd1234…): multinetd is not reachable") {
		t.Fatalf("exit %d, %+v; want code 11 naming the pod and the socket", code, got)
	}
}

// standIn runs a stand-in daemon on a real unix socket: it records the request and answers.
func standIn(t *testing.T, answer cniapi.Response) (string, *cniapi.Request) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var got cniapi.Request
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&got)
		_ = json.NewEncoder(w).Encode(answer)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock, &got
}

// TestForwardsTheInvocation: the daemon gets the invocation as the runtime made it, and the
// runtime gets the daemon's result.
func TestForwardsTheInvocation(t *testing.T) {
	sock, got := standIn(t, cniapi.Response{Result: json.RawMessage(`{"cniVersion":"1.0.0"}`)})
	conf := `{"cniVersion":"1.0.0","name":"multinet","socket":"` + sock + `"}`
	code, out := invoke(context.Background(), t, nil, conf)
	if code != 0 || out != "{\"cniVersion\":\"1.0.0\"}\n" {
		t.Errorf("exit %d, printed %q", code, out)
	}
	want := cniapi.Request{Command: "ADD", ContainerID: containerID, Netns: "/run/netns/x", IfName: "eth0",
		Args: podArgs, Path: "/opt/cni/bin", Config: json.RawMessage(conf)}
	if got.Command != want.Command || got.ContainerID != want.ContainerID || got.Netns != want.Netns ||
		got.IfName != want.IfName || got.Args != want.Args || got.Path != want.Path || string(got.Config) != conf {
		t.Errorf("daemon received %+v\nwant %+v", *got, want)
	}
}

// TestRelaysTheDaemonsError: the daemon's CNI error reaches the runtime as it wrote it.
func TestRelaysTheDaemonsError(t *testing.T) {
	want := types.Error{Code: 7, Msg: `pod ns/web: network "lan" not found`, Details: "d"}
	sock, _ := standIn(t, cniapi.Response{Error: &want})
	code, out := invoke(context.Background(), t, map[string]string{"CNI_COMMAND": "DEL"},
		`{"cniVersion":"1.0.0","name":"multinet","socket":"`+sock+`"}`)
	if got := cniError(t, out); code != 1 || got != want {
		t.Errorf("exit %d, %+v; want %+v", code, got, want)
	}
}

// TestShimLinksNoHeavyPackages: what made each exec of the shim twice as expensive as the
// smallest Go program stays out of its binary.
func TestShimLinksNoHeavyPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/multinet/multinet/cmd/multinet").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		heavy := pkg == "net" || pkg == "fmt" || pkg == "reflect" || pkg == "encoding/json" ||
			strings.HasPrefix(pkg, "net/") || strings.HasPrefix(pkg, "crypto") || strings.HasPrefix(pkg, "regexp") ||
			strings.HasPrefix(pkg, "github.com/containernetworking/")
		if heavy {
			t.Errorf("cmd/multinet links %s", pkg)
		}
	}
}
