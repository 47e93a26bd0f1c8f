package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

// Annotation is the pod annotation that carries the network status, as
// defined by the NPWG multi-network specification.
const Annotation = nadv1.NetworkStatusAnnot

// Network is one attached network as the daemon knows it.
type Network struct {
	// Name is "namespace/name" for a NetworkAttachmentDefinition and the
	// conf's network name for the cluster default network.
	Name string
	// IfName is the interface the runtime asked for. The result may name
	// others (a host veth): the one reported is the sandbox interface with
	// this name, else the first sandbox interface, else IfName itself.
	IfName string
	// Default is true for the network that carries the pod's default route.
	Default bool
	// Result is the delegate's CNI result, of any version.
	Result types.Result
	// DeviceInfo is the device-info of the attachment, if any.
	DeviceInfo *nadv1.DeviceInfo
	// IPAMDNS is the DNS of the IPAM plugin's result, reported when Result has none:
	// macvlan, ipvlan and vlan replace it with their conf's "dns", usually empty.
	IPAMDNS types.DNS
}

// errNoResult is returned by Build for a network without a CNI result.
var errNoResult = errors.New("no CNI result")

// Build returns the network status of each network, in order.
func Build(nets []Network) ([]nadv1.NetworkStatus, error) {
	out := make([]nadv1.NetworkStatus, 0, len(nets))
	for _, n := range nets {
		s, err := buildOne(n)
		if err != nil {
			return nil, fmt.Errorf("network %q: %w", n.Name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// wireStatus is a network status as written: without "dns" when there is nothing to say
// (nadv1's DNS is a struct, which omitempty does not leave out).
type wireStatus struct {
	nadv1.NetworkStatus
	DNS *nadv1.DNS `json:"dns,omitempty"`
}

// Marshal returns the annotation value for s: a JSON list, "[]" when empty.
func Marshal(s []nadv1.NetworkStatus) (string, error) {
	out := make([]wireStatus, 0, len(s))
	for _, st := range s {
		w := wireStatus{NetworkStatus: st}
		if d := st.DNS; len(d.Nameservers) > 0 || d.Domain != "" || len(d.Search) > 0 || len(d.Options) > 0 {
			w.DNS = &d
		}
		out = append(out, w)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("marshal network status: %w", err)
	}
	return string(b), nil
}

// Same reports whether two annotation values say the same: equal once decoded, whatever their
// spacing, key order, or empty fields written or left out ("dns":{}). A value that does not
// decode is the same as itself only.
func Same(a, b string) bool {
	if a == b {
		return true
	}
	na, errA := normalize(a)
	nb, errB := normalize(b)
	return errA == nil && errB == nil && na == nb
}

// normalize decodes an annotation value and writes it again as Marshal does.
func normalize(value string) (string, error) {
	var list []nadv1.NetworkStatus
	if err := json.Unmarshal([]byte(value), &list); err != nil {
		return "", fmt.Errorf("decode network status: %w", err)
	}
	return Marshal(list)
}

// buildOne returns the status of a single network.
func buildOne(n Network) (nadv1.NetworkStatus, error) {
	a, err := attachmentOf(n)
	if err != nil {
		return nadv1.NetworkStatus{}, err
	}
	s := nadv1.NetworkStatus{
		Name:       n.Name,
		Interface:  a.ifName,
		Mac:        a.mac,
		Mtu:        a.mtu,
		Default:    n.Default,
		DNS:        convertDNS(a.dns),
		DeviceInfo: n.DeviceInfo,
	}
	for _, ip := range a.ips {
		s.IPs = append(s.IPs, ip.Address.IP.String())
		if ip.Gateway != nil {
			s.Gateway = append(s.Gateway, ip.Gateway.String())
		}
	}
	return s, nil
}

// Interface is the pod's interface of a network as Build reports it, its addresses with
// their prefix lengths.
type Interface struct {
	Name string
	Mac  string
	IPs  []net.IPNet
}

// InterfaceOf returns the interface of n that Build reports: the same name, MAC and
// addresses, so that other reports of the attachment (a ResourceClaim's device status) say
// the same.
func InterfaceOf(n Network) (Interface, error) {
	a, err := attachmentOf(n)
	if err != nil {
		return Interface{}, fmt.Errorf("network %q: %w", n.Name, err)
	}
	out := Interface{Name: a.ifName, Mac: a.mac}
	for _, ip := range a.ips {
		out.IPs = append(out.IPs, ip.Address)
	}
	return out, nil
}

// attachment is the part of a CNI result that concerns the pod's interface.
type attachment struct {
	ifName string
	mac    string
	mtu    int
	ips    []*types100.IPConfig
	dns    types.DNS
}

// attachmentOf picks the sandbox interface of n's result and its addresses.
func attachmentOf(n Network) (attachment, error) {
	if n.Result == nil {
		return attachment{}, errNoResult
	}
	r, err := types100.NewResultFromResult(n.Result)
	if err != nil {
		return attachment{}, fmt.Errorf("convert CNI result: %w", err)
	}
	a := attachment{ifName: n.IfName, dns: r.DNS}
	if a.dns.IsEmpty() {
		a.dns = n.IPAMDNS
	}
	idx := sandboxInterface(r.Interfaces, n.IfName)
	if idx >= 0 {
		iface := r.Interfaces[idx]
		a.ifName, a.mac, a.mtu = iface.Name, iface.Mac, iface.Mtu
	}
	a.ips = ipsOf(r.IPs, idx)
	return a, nil
}

// sandboxInterface returns the index of the interface inside the sandbox,
// preferring the one named ifName, or -1 when the result lists none.
func sandboxInterface(ifaces []*types100.Interface, ifName string) int {
	first := -1
	for i, iface := range ifaces {
		if iface == nil || iface.Sandbox == "" {
			continue
		}
		if iface.Name == ifName {
			return i
		}
		if first < 0 {
			first = i
		}
	}
	return first
}

// ipsOf returns the entries of ips whose interface index is idx, or all of
// them when no entry has an interface index.
func ipsOf(ips []*types100.IPConfig, idx int) []*types100.IPConfig {
	indexed := false
	for _, ip := range ips {
		if ip != nil && ip.Interface != nil {
			indexed = true
			break
		}
	}
	var out []*types100.IPConfig
	for _, ip := range ips {
		if ip == nil {
			continue
		}
		if !indexed || (ip.Interface != nil && *ip.Interface == idx) {
			out = append(out, ip)
		}
	}
	return out
}

// convertDNS copies a CNI DNS section into its annotation form.
func convertDNS(d types.DNS) nadv1.DNS {
	return nadv1.DNS{
		Nameservers: cloneStrings(d.Nameservers),
		Domain:      d.Domain,
		Search:      cloneStrings(d.Search),
		Options:     cloneStrings(d.Options),
	}
}

// cloneStrings copies s, keeping nil as nil.
func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}

// AddedInterfaceMessage returns the message of an AddedInterface Event for
// n, in the form Multus uses: "Add net1 [10.1.0.5/24] from net/storage".
func AddedInterfaceMessage(n Network) (string, error) {
	a, err := attachmentOf(n)
	if err != nil {
		return "", fmt.Errorf("network %q: %w", n.Name, err)
	}
	cidrs := make([]string, 0, len(a.ips))
	for _, ip := range a.ips {
		cidrs = append(cidrs, ip.Address.String())
	}
	return fmt.Sprintf("Add %s [%s] from %s", a.ifName, strings.Join(cidrs, " "), n.Name), nil
}
