package attach

import (
	"fmt"
	"net"
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

// replacedDefault is the key of an attachment's Meta listing the default routes its
// default-route replaced, "ifname=gw,...", put back when it is unplugged.
const replacedDefault = "replaced-default"

// applyDefaultRoute moves the default route of each family the attachment names a gateway
// for (one IPv4, one IPv6) onto it, and records in its Meta the routes it replaced.
func (m *Manager) applyDefaultRoute(req *request, sb *checkpoint.Sandbox, ds []plan.Delegate) error {
	for _, d := range ds {
		if len(d.DefaultRoute) == 0 {
			continue
		}
		if m.Routes == nil {
			return fmt.Errorf("network %q: default-route is not supported by this daemon", d.Network)
		}
		m.rememberDefaults(sb, &d)
		for _, gw := range d.DefaultRoute {
			if err := m.Routes.MoveDefaultRoute(sb.Netns, d.IfName, gw); err != nil {
				return fmt.Errorf("network %q (%s): default route via %s: %w", d.Network, d.IfName, gw, err)
			}
		}
	}
	return nil
}

// rememberDefaults records in d's attachment the default routes of the families d moves, as
// they are before the move (other interfaces' only).
func (m *Manager) rememberDefaults(sb *checkpoint.Sandbox, d *plan.Delegate) {
	i := sb.Find(d.IfName)
	current, err := m.Routes.DefaultRoutes(sb.Netns)
	if i < 0 || err != nil {
		return
	}
	var kept []string
	for _, r := range current {
		for _, gw := range d.DefaultRoute {
			if r.IfName != d.IfName && (r.GW.To4() != nil) == (gw.To4() != nil) {
				kept = append(kept, r.IfName+"="+r.GW.String())
			}
		}
	}
	if len(kept) > 0 {
		sb.Attachments[i].Meta[replacedDefault] = strings.Join(kept, ",")
	}
}

// restoreDefaults puts back, after a hot unplug of a, the default routes its default-route
// replaced, on interfaces still there. Best effort: a failure is logged and reported as an
// Event, the unplug itself stands.
func (m *Manager) restoreDefaults(req *request, sb *checkpoint.Sandbox, a *checkpoint.Attachment) {
	if a.Meta[replacedDefault] == "" || m.Routes == nil {
		return
	}
	for _, pair := range strings.Split(a.Meta[replacedDefault], ",") {
		ifname, gw, _ := strings.Cut(pair, "=")
		if err := m.Routes.MoveDefaultRoute(sb.Netns, ifname, net.ParseIP(gw)); err != nil {
			m.warn(req, status.ReasonUnplugFailed, fmt.Errorf("pod %s: network %q (%s) unplugged, but the default route via %s on %s it had replaced could not be restored: %w",
				req.pod, a.Network, a.IfName, gw, ifname, err))
		}
	}
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
