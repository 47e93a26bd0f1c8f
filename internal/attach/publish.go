package attach

import (
	"errors"
	"fmt"
	"net"
	"slices"
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

// checkKeptDefaultRoutes refuses to plug an attachment whose default-route takes an address
// family (IPv4, IPv6) whose default route an attachment kept in the sandbox carries already,
// or one plugged before it: a pod has one default route per family, and unplugging either
// attachment would put back routes the other one replaced.
func checkKeptDefaultRoutes(sb *checkpoint.Sandbox, ds []plan.Delegate) error {
	holder := map[bool]string{} // IPv4? -> the attachment that carries that family's default
	for i := range sb.Attachments {
		a := &sb.Attachments[i]
		for _, gw := range defaultGateways(a) {
			holder[gw.To4() != nil] = fmt.Sprintf("network %q (%s)", a.Network, a.IfName)
		}
	}
	for _, d := range ds {
		this := fmt.Sprintf("network %q (%s)", d.Network, d.IfName)
		for _, gw := range d.DefaultRoute {
			v4 := gw.To4() != nil
			if other, taken := holder[v4]; taken {
				return fmt.Errorf("%s asks for the %s default route (default-route %s), which %s carries already: only one attachment may carry it",
					this, family(v4), gw, other)
			}
			holder[v4] = this
		}
	}
	return nil
}

func family(v4 bool) string {
	if v4 {
		return "IPv4"
	}
	return "IPv6"
}

// defaultGateways are the gateways an attachment's element asked to carry the pod's default
// routes (recorded in its Meta "default-route").
func defaultGateways(a *checkpoint.Attachment) []net.IP {
	var gws []net.IP
	for _, gw := range strings.Split(a.Meta["default-route"], ",") {
		if ip := net.ParseIP(gw); ip != nil {
			gws = append(gws, ip)
		}
	}
	return gws
}

// replacedDefault is the key of an attachment's Meta listing the default routes its
// default-route replaced, "ifname=gw,...": put back when it is unplugged or rolled back.
const replacedDefault = "replaced-default"

// applyDefaultRoute completes the attachments on ifnames whose element asked for the default
// route (default-route): for each, it records in its Meta the default routes of the families
// it takes as they are now (replacedDefault), writes the record, and only then moves them
// onto it; the attachment is Added once they moved. A failure or a crash past the write finds
// in the record what to put back (rollback, unplug).
func (m *Manager) applyDefaultRoute(sb *checkpoint.Sandbox, ifnames []string) error {
	for _, ifname := range ifnames {
		a := &sb.Attachments[sb.Find(ifname)]
		gws := defaultGateways(a)
		if len(gws) == 0 {
			continue
		}
		if m.Routes == nil {
			return fmt.Errorf("network %q: default-route is not supported by this daemon", a.Network)
		}
		if err := m.rememberDefaults(sb, a, gws); err != nil {
			return err
		}
		if err := m.Store.Update(sb); err != nil {
			return err
		}
		for _, gw := range gws {
			if err := m.Routes.MoveDefaultRoute(sb.Netns, a.IfName, gw); err != nil {
				return fmt.Errorf("network %q (%s): default route via %s: %w", a.Network, a.IfName, gw, err)
			}
		}
		a.State = checkpoint.Added
	}
	return nil
}

// rememberDefaults records in a's Meta the default routes of the families of gws, as they are
// now, on interfaces other than a's own (its plugin may have added some).
func (m *Manager) rememberDefaults(sb *checkpoint.Sandbox, a *checkpoint.Attachment, gws []net.IP) error {
	current, err := m.Routes.DefaultRoutes(sb.Netns)
	if err != nil {
		return fmt.Errorf("network %q (%s): default-route: reading the default routes it replaces: %w", a.Network, a.IfName, err)
	}
	var kept []string
	for _, r := range current {
		if r.IfName != a.IfName && slices.ContainsFunc(gws, func(gw net.IP) bool { return (gw.To4() != nil) == (r.GW.To4() != nil) }) {
			kept = append(kept, r.IfName+"="+r.GW.String())
		}
	}
	delete(a.Meta, replacedDefault)
	if len(kept) > 0 {
		a.Meta[replacedDefault] = strings.Join(kept, ",")
	}
	return nil
}

// restoreDefaults puts back the default routes a's default-route replaced (replacedDefault),
// except those on the interfaces in skip (going away too). It returns the failures, each
// naming its route.
func (m *Manager) restoreDefaults(sb *checkpoint.Sandbox, a *checkpoint.Attachment, skip []string) error {
	if a.Meta[replacedDefault] == "" || m.Routes == nil {
		return nil
	}
	var errs []error
	for _, pair := range strings.Split(a.Meta[replacedDefault], ",") {
		ifname, gw, _ := strings.Cut(pair, "=")
		if slices.Contains(skip, ifname) {
			continue
		}
		if err := m.Routes.MoveDefaultRoute(sb.Netns, ifname, net.ParseIP(gw)); err != nil {
			errs = append(errs, fmt.Errorf("default route via %s on %s: %w", gw, ifname, err))
		}
	}
	return errors.Join(errs...)
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
		n := status.Network{Name: a.Network, IfName: a.IfName, Default: def, Result: res, DeviceInfo: deviceInfo(&a)}
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
