package cniapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/multinet/multinet/internal/cniapi/wire"
)

// NewRequest is the request for one CNI invocation as skel decoded it.
func NewRequest(command string, args *skel.CmdArgs) *Request {
	return &Request{Command: command, ContainerID: args.ContainerID, Netns: args.Netns,
		IfName: args.IfName, Args: args.Args, Path: args.Path, Config: args.StdinData}
}

// Call POSTs req to path on the daemon's unix socket and decodes its response. An error
// means the daemon could not be asked or did not answer; the daemon's own verdict is in
// the Response.
func Call(ctx context.Context, socket, path string, req *Request) (*Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	reply, err := wire.Post(ctx, socket, path, body)
	if err != nil {
		return nil, err
	}
	var out Response
	if err := json.Unmarshal(reply, &out); err != nil {
		return nil, fmt.Errorf("decode reply: %w", err)
	}
	return &out, nil
}

// Relay hands the daemon's answer to the runtime: its CNI error, or its result on out.
func (r *Response) Relay(out io.Writer) error {
	if r.Error != nil {
		return r.Error
	}
	if len(r.Result) == 0 {
		return nil
	}
	_, err := out.Write(append(r.Result, '\n'))
	return err
}

// DialWait is how long a call waits for a daemon that is not listening (restarting, being
// upgraded) before it gives up.
const DialWait = wire.DialWait
