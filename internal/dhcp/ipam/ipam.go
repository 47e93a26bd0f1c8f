// Package ipam is the body of multinet's IPAM plugins, multinet-dhcp and multinet-ipam: they
// hold no state and make no decision, they forward each invocation to multinetd (the DHCP
// lease manager, the cluster-wide address manager) over the daemon's unix socket and relay
// the answer. Both find the daemon's socket by one rule, Socket.
package ipam

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/multinet/multinet/internal/cniapi"
)

// Path is where multinetd serves the lease manager on its socket.
const Path = "/dhcp"

// ClusterPath is where multinetd serves the cluster-wide address manager (multinet-ipam).
const ClusterPath = "/ipam"

// Plugin is one of the forwarding plugins.
type Plugin struct {
	Name  string // the plugin's type, in errors
	Path  string // where multinetd serves it
	About string // the plugin's about line
}

// DHCP and Cluster are multinet-dhcp and multinet-ipam.
var (
	DHCP    = Plugin{Name: "multinet-dhcp", Path: Path, About: "multinet-dhcp: DHCP IPAM served by multinetd"}
	Cluster = Plugin{Name: "multinet-ipam", Path: ClusterPath, About: "multinet-ipam: cluster-wide IPAM served by multinetd"}
)

// SocketEnv names the environment variable multinetd sets to its socket.
const SocketEnv = "MULTINET_SOCKET"

// errPluginNotAvailable is CNI 1.1's STATUS code for a plugin that cannot serve ADDs.
const errPluginNotAvailable = 50

// callTimeout bounds one call to the daemon; the daemon bounds the DHCP conversation itself
// by the network's "timeout".
const callTimeout = 5 * time.Minute

// Main is multinet-dhcp's main.
func Main() { DHCP.Main() }

// Main is the plugin's main.
func (p Plugin) Main() {
	fwd := func(command string) func(*skel.CmdArgs) error {
		return func(args *skel.CmdArgs) error {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			defer cancel()
			return p.Forward(ctx, command, args, Socket(args.StdinData, os.Getenv(SocketEnv)), os.Stdout)
		}
	}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: fwd("ADD"), Del: fwd("DEL"), Check: fwd("CHECK"), GC: fwd("GC"),
		Status: fwd("STATUS")}, version.All, p.About)
}

// Forward sends one invocation to multinet-dhcp's side of the daemon at socket.
func Forward(ctx context.Context, command string, args *skel.CmdArgs, socket string, out io.Writer) error {
	return DHCP.Forward(ctx, command, args, socket, out)
}

// Forward sends one invocation to the daemon at socket and writes its result to out.
func (p Plugin) Forward(ctx context.Context, command string, args *skel.CmdArgs, socket string, out io.Writer) error {
	resp, err := cniapi.Call(ctx, socket, p.Path, cniapi.NewRequest(command, args))
	if err != nil {
		code := uint(types.ErrTryAgainLater)
		if command == "STATUS" {
			code = errPluginNotAvailable
		}
		return types.NewError(code,
			fmt.Sprintf("%s: multinetd is not reachable at %s (is the multinet DaemonSet running on this node?)", p.Name, socket),
			err.Error())
	}
	return resp.Relay(out)
}

// Socket is the daemon's socket for one invocation of either plugin: the network's ipam
// "socket" key, the more specific, else env (the value of $MULTINET_SOCKET, which multinetd
// sets for every plugin it runs), else the default socket.
func Socket(stdin []byte, env string) string {
	var c struct {
		IPAM struct {
			Socket string `json:"socket"`
		} `json:"ipam"`
	}
	if json.Unmarshal(stdin, &c) == nil && c.IPAM.Socket != "" {
		return c.IPAM.Socket
	}
	if env != "" {
		return env
	}
	return cniapi.DefaultSocket
}
