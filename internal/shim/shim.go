// Package shim is the multinet CNI plugin the runtime executes: it holds no credentials and
// makes no decision, it forwards the invocation to multinetd over its unix socket and relays
// the answer. VERSION is answered locally (by skel).
package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	resp, err := cniapi.Call(ctx, c.Socket, cniapi.Path, cniapi.NewRequest(command, args))
	if err != nil {
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("multinet: multinetd is not reachable at %s (is the multinet DaemonSet running on this node?)", c.Socket),
			err.Error())
	}
	return resp.Relay(out)
}

// Main is the shim's main.
func Main(about string) {
	skel.PluginMainFuncs(Funcs(os.Stdout), supportedVersions, about)
}
