// Package cniapi defines the request and response exchanged between the multinet CNI shim and
// the multinetd daemon over the daemon's unix socket. It depends on nothing Kubernetes-related
// so the shim stays small and starts fast.
package cniapi

import (
	"encoding/json"

	"github.com/containernetworking/cni/pkg/types"
)

// Path is the HTTP path the daemon serves CNI requests on.
const Path = "/cni"

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/multinet/multinet.sock"

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
