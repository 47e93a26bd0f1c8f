// Package cniapi defines the request and response exchanged between the multinet CNI shim and
// the multinetd daemon over the daemon's unix socket, as Go types for the daemon and for
// multinet-dhcp. The shim itself speaks the same protocol through package wire, which links
// no encoding/json or net/http so that the shim starts fast; wire's tests hold the two to
// one format.
package cniapi

import (
	"encoding/json"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/cniapi/wire"
)

// Path is the HTTP path the daemon serves CNI requests on.
const Path = wire.Path

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = wire.DefaultSocket

// Request is one CNI invocation as the runtime made it to the shim: the CNI_* environment
// and the network configuration read from stdin.
type Request struct {
	Command     string          `json:"command"`
	ContainerID string          `json:"containerID"`
	Netns       string          `json:"netns"`
	IfName      string          `json:"ifName"`
	Args        string          `json:"args"`
	Path        string          `json:"path"`
	Config      json.RawMessage `json:"config"`
}

// Response carries either the CNI result to print (ADD, or nothing for the other verbs)
// or a CNI error with its spec code.
type Response struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *types.Error    `json:"error,omitempty"`
}

// ArgsMap splits CNI_ARGS ("K=V;K=V") into a map; malformed pairs are skipped.
func (r *Request) ArgsMap() map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(r.Args, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}
