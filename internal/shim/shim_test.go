package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/cniapi"
)

// TestDaemonDownIsTryAgainLater: the shim waits for a daemon that is not listening (bounded
// here by the context), then answers "try again later" naming the socket.
func TestDaemonDownIsTryAgainLater(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	args := &skel.CmdArgs{ContainerID: "c", StdinData: []byte(`{"cniVersion":"1.0.0","socket":"` + sock + `"}`)}
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	err := Forward(ctx, "ADD", args, &bytes.Buffer{})
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != types.ErrTryAgainLater || !strings.Contains(cniErr.Msg, sock) {
		t.Fatalf("error %#v, want code 11 naming the socket", err)
	}
}

// TestForwardsTheInvocation runs a stand-in daemon on a real unix socket.
func TestForwardsTheInvocation(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var got cniapi.Request
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&got)
		_ = json.NewEncoder(w).Encode(cniapi.Response{Result: json.RawMessage(`{"cniVersion":"1.0.0"}`)})
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	conf := `{"cniVersion":"1.0.0","name":"multinet","socket":"` + sock + `"}`
	args := &skel.CmdArgs{ContainerID: "c1", Netns: "/run/netns/x", IfName: "eth0", Args: "K8S_POD_NAME=p", Path: "/opt/cni/bin", StdinData: []byte(conf)}
	var out bytes.Buffer
	if err := Forward(context.Background(), "ADD", args, &out); err != nil {
		t.Fatal(err)
	}
	if got.Command != "ADD" || got.ContainerID != "c1" || got.Netns != "/run/netns/x" || got.IfName != "eth0" ||
		got.Args != "K8S_POD_NAME=p" || string(got.Config) != conf {
		t.Errorf("daemon received %+v", got)
	}
	if strings.TrimSpace(out.String()) != `{"cniVersion":"1.0.0"}` {
		t.Errorf("printed %q", out.String())
	}
}
