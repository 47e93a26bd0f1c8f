package selection

import (
	"fmt"
	"net"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// elementCheck validates one aspect of an element.
type elementCheck func(elem *nadv1.NetworkSelectionElement) *Error

var elementChecks = []elementCheck{
	checkName, checkNamespace, checkInterface, checkMAC, checkIPs,
	checkDefaultRoute, checkPortMappings, checkBandwidth, checkIPAMClaim,
}

// validate checks each element, then the rules across elements: interface
// names are unique and at most one element sets the default route.
func validate(elems []nadv1.NetworkSelectionElement) error {
	ifaces := make(map[string]int)
	defaultRoute := 0
	for i := range elems {
		elem := &elems[i]
		if err := validateElement(elem); err != nil {
			err.Index, err.Network = i+1, label(elem.Namespace, elem.Name)
			return err
		}
		if name := elem.InterfaceRequest; name != "" {
			if first, dup := ifaces[name]; dup {
				return &Error{Index: i + 1, Network: label(elem.Namespace, elem.Name), Field: "interface",
					Value: name, Reason: fmt.Sprintf("already requested by element %d (%q)", first,
						label(elems[first-1].Namespace, elems[first-1].Name))}
			}
			ifaces[name] = i + 1
		}
		if len(elem.GatewayRequest) > 0 {
			if defaultRoute != 0 {
				return &Error{Index: i + 1, Network: label(elem.Namespace, elem.Name), Field: "default-route",
					Reason: fmt.Sprintf("element %d (%q) already sets the default route; only one may", defaultRoute,
						label(elems[defaultRoute-1].Namespace, elems[defaultRoute-1].Name))}
			}
			defaultRoute = i + 1
		}
	}
	return nil
}

func validateElement(elem *nadv1.NetworkSelectionElement) *Error {
	for _, check := range elementChecks {
		if err := check(elem); err != nil {
			return err
		}
	}
	return nil
}

func checkName(elem *nadv1.NetworkSelectionElement) *Error {
	if elem.Name == "" {
		return fieldError("name", "", "must not be empty")
	}
	if errs := validation.IsDNS1123Subdomain(elem.Name); len(errs) > 0 {
		return fieldError("name", elem.Name, "not a valid object name: "+strings.Join(errs, "; "))
	}
	return nil
}

// checkNamespace validates the namespace, given or defaulted; an empty one
// (no namespace given, none for the pod) is left to the caller.
func checkNamespace(elem *nadv1.NetworkSelectionElement) *Error {
	if elem.Namespace == "" {
		return nil
	}
	if errs := validation.IsDNS1123Label(elem.Namespace); len(errs) > 0 {
		return fieldError("namespace", elem.Namespace, "not a valid namespace name: "+strings.Join(errs, "; "))
	}
	return nil
}

func checkInterface(elem *nadv1.NetworkSelectionElement) *Error {
	if elem.InterfaceRequest == "" {
		return nil
	}
	if reason := interfaceNameFault(elem.InterfaceRequest); reason != "" {
		return fieldError("interface", elem.InterfaceRequest, reason)
	}
	return nil
}

// checkMAC accepts what net.ParseMAC does; an Ethernet address must also be
// one the kernel lets an interface have (unicast, not all zeros).
func checkMAC(elem *nadv1.NetworkSelectionElement) *Error {
	if elem.MacRequest == "" {
		return nil
	}
	mac, err := net.ParseMAC(elem.MacRequest)
	if err != nil {
		return fieldError("mac", elem.MacRequest, "not a MAC address")
	}
	if len(mac) == 6 && mac[0]&1 == 1 {
		return fieldError("mac", elem.MacRequest, "a multicast address, which no interface can have")
	}
	if len(mac) == 6 && isZero(mac) {
		return fieldError("mac", elem.MacRequest, "all zeros, which no interface can have")
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func checkIPs(elem *nadv1.NetworkSelectionElement) *Error {
	for i, ip := range elem.IPRequest {
		if !isIPOrCIDR(ip) {
			return fieldError(fmt.Sprintf("ips[%d]", i+1), ip, "not an IP address nor a CIDR")
		}
	}
	return nil
}

func isIPOrCIDR(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	_, _, err := net.ParseCIDR(s)
	return err == nil
}

// checkDefaultRoute allows one gateway per address family: the pod's IPv4 and IPv6 default
// routes each go via one.
func checkDefaultRoute(elem *nadv1.NetworkSelectionElement) *Error {
	seen := map[bool]int{} // is IPv4 -> index
	for i, gw := range elem.GatewayRequest {
		field := fmt.Sprintf("default-route[%d]", i+1)
		if gw.To16() == nil {
			return fieldError(field, "", "empty gateway address")
		}
		v4 := gw.To4() != nil
		if first, dup := seen[v4]; dup {
			return fieldError(field, gw.String(), fmt.Sprintf("default-route[%d] is a gateway of the same address family; give at most one IPv4 and one IPv6 gateway", first))
		}
		seen[v4] = i + 1
	}
	return nil
}

func checkPortMappings(elem *nadv1.NetworkSelectionElement) *Error {
	for i, pm := range elem.PortMappingsRequest {
		field := fmt.Sprintf("portMappings[%d]", i+1)
		switch {
		case pm == nil:
			return fieldError(field, "", "empty port mapping")
		case pm.HostPort < 1 || pm.HostPort > 65535:
			return fieldError(field+".hostPort", fmt.Sprint(pm.HostPort), "out of range 1-65535")
		case pm.ContainerPort < 1 || pm.ContainerPort > 65535:
			return fieldError(field+".containerPort", fmt.Sprint(pm.ContainerPort), "out of range 1-65535")
		case pm.HostIP != "" && net.ParseIP(pm.HostIP) == nil:
			return fieldError(field+".hostIP", pm.HostIP, "not an IP address")
		}
	}
	return nil
}

func checkBandwidth(elem *nadv1.NetworkSelectionElement) *Error {
	bw := elem.BandwidthRequest
	if bw == nil {
		return nil
	}
	for _, v := range []struct {
		field string
		value int
	}{
		{"ingressRate", bw.IngressRate}, {"ingressBurst", bw.IngressBurst},
		{"egressRate", bw.EgressRate}, {"egressBurst", bw.EgressBurst},
	} {
		if v.value < 0 {
			return fieldError("bandwidth."+v.field, fmt.Sprint(v.value), "must not be negative")
		}
	}
	return nil
}

func checkIPAMClaim(elem *nadv1.NetworkSelectionElement) *Error {
	ref := elem.IPAMClaimReference
	if ref == "" {
		return nil
	}
	if errs := validation.IsDNS1123Subdomain(ref); len(errs) > 0 {
		return fieldError("ipam-claim-reference", ref, "not a valid object name: "+strings.Join(errs, "; "))
	}
	return nil
}
