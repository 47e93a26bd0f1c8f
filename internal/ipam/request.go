package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/ipam/pool"
)

// errBadConf marks configuration faults (CNI code 7: invalid network config).
var errBadConf = errors.New("invalid multinet-ipam configuration")

// request is one decoded IPAM invocation.
type request struct {
	*cniapi.Request
	version   string
	conf      pool.Config
	network   string // the NAD (multinet's MULTINET_NETWORK), else the conf's name
	pod       podRef
	requested []netip.Addr // "ips" of the runtime config or of args.cni
	valid     []attachment // GC: cni.dev/valid-attachments
}

type podRef struct{ Namespace, Name, UID string }

func (p podRef) String() string {
	if p.Name == "" {
		return "(no pod)"
	}
	return p.Namespace + "/" + p.Name
}

type attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

// netConf is what multinet-ipam reads of the delegate's config besides the ipam section.
type netConf struct {
	CNIVersion    string `json:"cniVersion"`
	Name          string `json:"name"`
	RuntimeConfig struct {
		IPs []string `json:"ips"`
	} `json:"runtimeConfig"`
	Args struct {
		CNI struct {
			IPs []string `json:"ips"`
		} `json:"cni"`
	} `json:"args"`
	ValidAttachments []attachment `json:"cni.dev/valid-attachments"`
}

func decode(in *cniapi.Request) (*request, error) {
	var nc netConf
	if err := json.Unmarshal(in.Config, &nc); err != nil {
		return nil, fmt.Errorf("%w: network configuration: %w", errBadConf, err)
	}
	args := in.ArgsMap()
	req := &request{Request: in, version: nc.CNIVersion, network: nc.Name, valid: nc.ValidAttachments,
		pod: podRef{Namespace: args["K8S_POD_NAMESPACE"], Name: args["K8S_POD_NAME"], UID: args["K8S_POD_UID"]}}
	if n := args["MULTINET_NETWORK"]; n != "" {
		req.network = n
	}
	conf, err := pool.Parse(in.Config)
	if err != nil {
		return nil, fmt.Errorf("%w: network %q: ipam: %w", errBadConf, req.network, err)
	}
	req.conf = conf
	ips := nc.RuntimeConfig.IPs
	if len(ips) == 0 {
		ips = nc.Args.CNI.IPs
	}
	for _, s := range ips {
		a, err := parseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: network %q: requested ip %q: %w", errBadConf, req.network, s, err)
		}
		if _, ok := conf.RangeFor(a); !ok {
			return nil, fmt.Errorf("%w: network %q: requested ip %s is in none of the network's ranges", errBadConf, req.network, a)
		}
		req.requested = append(req.requested, a)
	}
	return req, nil
}

// parseAddr reads "10.1.0.5" or "10.1.0.5/24" (the prefix is the range's, not the request's).
func parseAddr(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	return netip.ParseAddr(s)
}
