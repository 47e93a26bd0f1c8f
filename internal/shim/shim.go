// Package shim is the multinet CNI plugin the runtime executes: it holds no credentials and
// makes no decision, it forwards the invocation to multinetd over its unix socket and relays
// the answer. VERSION is answered locally (by skel).
package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/cniapi"
)

// conf is what the shim reads of its own conf: where the daemon listens.
type conf struct {
	Socket string `json:"socket"`
}

// timeout bounds one forwarded call; runtimes give up on a CNI call well before that.
const timeout = 5 * time.Minute

// Funcs returns the CNI verbs for skel.PluginMainFuncs, writing results to out.
func Funcs(out io.Writer) skel.CNIFuncs {
	fwd := func(command string) func(*skel.CmdArgs) error {
		return func(args *skel.CmdArgs) error {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			return Forward(ctx, command, args, out)
		}
	}
	return skel.CNIFuncs{Add: fwd("ADD"), Del: fwd("DEL"), Check: fwd("CHECK"), GC: fwd("GC"), Status: fwd("STATUS")}
}

// Forward sends one invocation to the daemon and writes its result to out.
func Forward(ctx context.Context, command string, args *skel.CmdArgs, out io.Writer) error {
	var c conf
	if len(args.StdinData) > 0 {
		if err := json.Unmarshal(args.StdinData, &c); err != nil {
			return types.NewError(types.ErrDecodingFailure, "multinet: network configuration on stdin", err.Error())
		}
	}
	if c.Socket == "" {
		c.Socket = cniapi.DefaultSocket
	}
	body, err := json.Marshal(cniapi.Request{Command: command, ContainerID: args.ContainerID, Netns: args.Netns,
		IfName: args.IfName, Args: args.Args, Path: args.Path, Config: args.StdinData})
	if err != nil {
		return types.NewError(types.ErrInternal, "multinet: encode request", err.Error())
	}
	resp, err := post(ctx, c.Socket, body)
	if err != nil {
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("multinet: multinetd is not reachable at %s (is the multinet DaemonSet running on this node?)", c.Socket),
			err.Error())
	}
	if resp.Error != nil {
		return resp.Error
	}
	if len(resp.Result) > 0 {
		_, err = out.Write(append(resp.Result, '\n'))
	}
	return err
}

func post(ctx context.Context, socket string, body []byte) (*cniapi.Response, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://multinetd"+cniapi.Path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return nil, fmt.Errorf("HTTP %d: %s", res.StatusCode, bytes.TrimSpace(msg))
	}
	var out cniapi.Response
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode reply: %w", err)
	}
	return &out, nil
}

// Main is the shim's main.
func Main(about string) {
	skel.PluginMainFuncs(Funcs(os.Stdout), supportedVersions, about)
}
