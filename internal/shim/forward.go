package shim

import (
	"context"
	"io"

	"github.com/multinet/multinet/internal/cniapi/wire"
)

// forward sends the invocation to the daemon on socket (empty: the default) and relays its
// answer: the result on out, or its CNI error as it wrote it.
func (inv *invocation) forward(ctx context.Context, socket string, conf []byte, out io.Writer) error {
	if socket == "" {
		socket = wire.DefaultSocket
	}
	req := wire.Request{Command: inv.Command, ContainerID: inv.ContainerID, Netns: inv.Netns,
		IfName: inv.IfName, Args: inv.Args, Path: inv.Path, Config: conf}
	reply, err := wire.Post(ctx, socket, wire.Path, req.AppendJSON(nil))
	var result, cniErr []byte
	if err == nil {
		result, cniErr, err = wire.ParseResponse(reply)
	}
	if err != nil {
		return inv.failDetails(errTryAgainLater, "multinetd is not reachable at "+socket+
			" (is the multinet DaemonSet running on this node?)", err.Error())
	}
	if cniErr != nil {
		return relayedError(cniErr)
	}
	if result == nil {
		return nil
	}
	_, err = out.Write(append(result, '\n'))
	return err
}
