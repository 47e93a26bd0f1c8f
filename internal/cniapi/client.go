package cniapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
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
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx, socket) },
	}}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://multinetd"+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("request to %s: %w", socket, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	res, err := client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("POST %s on %s: %w", path, socket, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return nil, fmt.Errorf("HTTP %d: %s", res.StatusCode, bytes.TrimSpace(msg))
	}
	var out Response
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
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
// upgraded) before it gives up: long enough to ride out a DaemonSet rollout, short enough
// for the runtime's own retry to take over.
const DialWait = 10 * time.Second

// dial connects to the socket, retrying while nothing listens there yet.
func dial(ctx context.Context, socket string) (net.Conn, error) {
	deadline := time.Now().Add(DialWait)
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", socket)
		if err == nil || time.Now().After(deadline) ||
			(!errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT)) {
			return c, err
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return nil, err
		}
	}
}
