package attach

import (
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/create"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/plan"
	"github.com/multinet/multinet/internal/status"
)

// checkDefaultRoutes allows at most one attachment to take the pod's default route.
func checkDefaultRoutes(ds []plan.Delegate) error {
	var first string
	for _, d := range ds {
		if len(d.DefaultRoute) == 0 {
			continue
		}
		if first != "" {
			return fmt.Errorf("networks %q and %q both ask for the default route", first, d.Network)
		}
		first = d.Network
	}
	return nil
}

// applyDefaultRoute moves the default route of each family the attachment names a gateway
// for (one IPv4, one IPv6) onto it.
func (m *Manager) applyDefaultRoute(req *request, sb *checkpoint.Sandbox, ds []plan.Delegate) error {
	for _, d := range ds {
		if len(d.DefaultRoute) > 0 && m.Routes == nil {
			return fmt.Errorf("network %q: default-route is not supported by this daemon", d.Network)
		}
		for _, gw := range d.DefaultRoute {
			if err := m.Routes.MoveDefaultRoute(sb.Netns, d.IfName, gw); err != nil {
				return fmt.Errorf("network %q (%s): default route via %s: %w", d.Network, d.IfName, gw, err)
			}
		}
	}
	return nil
}

// publish queues the pod's network-status annotation; it never blocks the ADD.
func (m *Manager) publish(req *request, sb *checkpoint.Sandbox) {
	if req.pod.Name == "" {
		return
	}
	value, err := networkStatus(sb, m.IPAMDNS)
	if err != nil {
		m.warn(req, status.ReasonNetworkStatusFailed, err)
		return
	}
	m.Annotations.Set(podRef(req.pod), value)
}

// announce posts one Normal AddedInterface Event listing every interface the pod got:
// "Add eth0 [10.244.0.5/16] from cluster; Add net1 [10.1.0.5/24] from ns/storage".
func (m *Manager) announce(req *request, sb *checkpoint.Sandbox) {
	if !m.cfg.AddedEvents || req.pod.Name == "" {
		return
	}
	var parts []string
	for i := range sb.Attachments {
		parts = append(parts, addedMessage(&sb.Attachments[i]))
	}
	if len(parts) > 0 {
		m.Events.Normal(podRef(req.pod), status.ReasonAddedInterface, strings.Join(parts, "; "))
	}
}

// addedMessage says what an attachment got: "Add net2 [10.1.0.5/24] from ns/blue".
func addedMessage(a *checkpoint.Attachment) string {
	if res, err := create.CreateFromBytes(a.Result); err == nil {
		if msg, err := status.AddedInterfaceMessage(status.Network{Name: a.Network, IfName: a.IfName, Result: res}); err == nil {
			return msg
		}
	}
	return fmt.Sprintf("Add %s from %s", a.IfName, a.Network)
}

// networkStatus renders the annotation from the recorded results, in attachment order.
// ipamDNS, when set, gives the DNS an IPAM holds for an interface (the DHCP lease's): shown
// when the interface plugin's result dropped it (macvlan, ipvlan, vlan).
func networkStatus(sb *checkpoint.Sandbox, ipamDNS func(containerID, ifname string) types.DNS) (string, error) {
	moved := false
	for _, a := range sb.Attachments {
		moved = moved || a.Meta["default-route"] != ""
	}
	nets := make([]status.Network, 0, len(sb.Attachments))
	for _, a := range sb.Attachments {
		if a.State != checkpoint.Added {
			continue
		}
		res, err := create.CreateFromBytes(a.Result)
		if err != nil {
			return "", fmt.Errorf("network %q result: %w", a.Network, err)
		}
		def := a.Meta["default-route"] != "" || (a.Default && !moved)
		n := status.Network{Name: a.Network, IfName: a.IfName, Default: def, Result: res}
		if ipamDNS != nil {
			n.IPAMDNS = ipamDNS(sb.ContainerID, a.IfName)
		}
		nets = append(nets, n)
	}
	list, err := status.Build(nets)
	if err != nil {
		return "", err
	}
	return status.Marshal(list)
}
