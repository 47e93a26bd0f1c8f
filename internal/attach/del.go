package attach

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/plan"
	"github.com/multinet/multinet/internal/status"
)

// Del detaches every network of the sandbox from its checkpoint record alone: no pod, NAD or
// API server is needed. DEL of an unknown sandbox succeeds (DEL is idempotent).
func (m *Manager) Del(ctx context.Context, in *cniapi.Request) error {
	req, err := decode(in)
	if err != nil {
		return err
	}
	defer m.lock(req.ContainerID)()
	if err := m.delSandboxOf(ctx, req.ContainerID, req.Netns, req.pod); err != nil {
		m.warn(req, status.ReasonNetworkTeardownFailed, err)
		return err
	}
	return nil
}

// delSandbox DELs every attachment of the sandbox, the default network last (detachAll).
// The record goes when no attachment is left in it. Callers hold the sandbox lock.
func (m *Manager) delSandbox(ctx context.Context, containerID, netns string) error {
	return m.delSandboxOf(ctx, containerID, netns, plan.Pod{})
}

// delSandboxOf is delSandbox for the runtime's DEL, whose arguments name the pod (empty for
// GC and sweep). A corrupt record does not block it: the attachments that can still be read
// of it are DELed, as of a sound record (see salvage).
func (m *Manager) delSandboxOf(ctx context.Context, containerID, netns string, pod plan.Pod) error {
	sb, err := m.Store.Load(containerID)
	if errors.Is(err, checkpoint.ErrNotFound) {
		return nil
	}
	var corrupt *checkpoint.CorruptError
	if errors.As(err, &corrupt) {
		sb, err = m.salvage(corrupt, pod)
	}
	if err != nil {
		return err
	}
	sb.Netns = delNetns(netns, sb.Netns)
	if devs := deviceAttachments(sb); len(devs) > 0 {
		// The claims' status goes first: a crash in the DELs below is followed by another DEL,
		// which finds the record; after the record is gone, nothing would clear it.
		left := *sb
		left.Attachments = nil
		m.reportClaims(ctx, &left, devs)
	}
	ifnames := make([]string, len(sb.Attachments))
	for i := range sb.Attachments {
		ifnames[i] = sb.Attachments[i].IfName
	}
	if err := m.detachAll(ctx, sb, ifnames); err != nil {
		return fmt.Errorf("pod %s: %w", podOf(sb), err)
	}
	if m.Policy != nil {
		m.Policy.Forget(containerID, sb.Netns)
	}
	m.Log.Info("detached", "pod", podOf(sb).String(), "containerID", containerID)
	return nil
}

// delNetns is the netns path the delegates get on DEL: the runtime's, else the recorded one
// if it still exists, else none (plugins then release IPAM state only).
func delNetns(fromRuntime, recorded string) string {
	if fromRuntime != "" {
		return fromRuntime
	}
	if recorded != "" {
		if _, err := os.Stat(recorded); err == nil {
			return recorded
		}
	}
	return ""
}

// detachAll DELs the attachments on ifnames (in planned order), stage by stage in reverse
// (stages): each network that runs alone, newest first, then the secondary networks at once,
// then the default network, last. It never stops at a failure: each attachment whose DEL
// succeeded (or that can be dropped, see detachOne) leaves the record, the others stay in it
// for the next DEL, GC or sweep, and their errors are returned together, newest first. The
// record is written once at the end, and removed when it is empty: a crash before that only
// repeats DELs, which are idempotent.
func (m *Manager) detachAll(ctx context.Context, sb *checkpoint.Sandbox, ifnames []string) error {
	var errs []error
	stages := m.stages(sb, ifnames)
	done := m.phase(ctx, "DEL", "delegates")
	for i := len(stages) - 1; i >= 0; i-- {
		stage := stages[i]
		// The DELs of a stage only read sb; the record changes after they all returned.
		delErrs := each(stage, func(ifname string) error { return m.delOne(ctx, sb, ifname) })
		for j := len(stage) - 1; j >= 0; j-- {
			errs = append(errs, m.settle(sb, stage[j], delErrs[j]))
		}
	}
	done()
	defer m.phase(ctx, "DEL", "record")()
	return errors.Join(append(errs, m.save(sb))...)
}

// detachOne DELs one attachment and drops it from the record (in memory), as settle says.
func (m *Manager) detachOne(ctx context.Context, sb *checkpoint.Sandbox, ifname string) error {
	if sb.Find(ifname) < 0 {
		return nil
	}
	return m.settle(sb, ifname, m.delOne(ctx, sb, ifname))
}

// delOne runs the DEL of the attachment on ifname; it does not change the record.
//
// A DEL that fails while the netns has no interface of that name runs again without the
// netns: the interface left already, by a DEL that ran before the record could say so (a
// crash between the two). Plugins such as host-device refuse a DEL in a netns without their
// interface; what is left of their work (an IPAM's address) lies outside the netns, and a
// DEL without one releases it.
func (m *Manager) delOne(ctx context.Context, sb *checkpoint.Sandbox, ifname string) error {
	a := &sb.Attachments[sb.Find(ifname)]
	inv := invocation(sb, a)
	err := m.Delegates.Del(ctx, inv)
	if err != nil && inv.Netns != "" && linkAbsent(inv.Netns, a.IfName) {
		inv.Netns = ""
		if again := m.Delegates.Del(ctx, inv); again == nil {
			m.Log.Info("DEL done without the netns: the interface had left it already", "pod", podOf(sb).String(),
				"network", a.Network, "ifname", ifname, "containerID", sb.ContainerID, "firstErr", err)
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("network %q (%s): DEL: %w", a.Network, a.IfName, err)
	}
	return nil
}

// linkAbsent tells whether the netns at path is there and has no link named ifname.
func linkAbsent(path, ifname string) bool {
	missing := false
	err := ns.WithNetNSPath(path, func(ns.NetNS) error {
		_, err := netlinksafe.LinkByName(ifname)
		missing = errors.As(err, new(netlink.LinkNotFoundError))
		return nil
	})
	return err == nil && missing
}

// settle applies the outcome of the DEL of the attachment on ifname to the record: it leaves
// when its DEL succeeded. An attachment whose ADD never completed and whose DEL failed in a
// way no retry can change (permanent) leaves too, with a Warning Event: keeping it would
// fail every later DEL of the sandbox and leave the pod's other networks, and its cluster
// address, attached for good. Any other failure keeps it, and is returned.
func (m *Manager) settle(sb *checkpoint.Sandbox, ifname string, delErr error) error {
	i := sb.Find(ifname)
	if delErr != nil {
		if !permanent(delErr, &sb.Attachments[i]) {
			return delErr
		}
		m.dropped(sb, delErr)
	}
	sb.Attachments = slices.Delete(sb.Attachments, i, i+1)
	return nil
}

// dropped reports an attachment given up by settle.
func (m *Manager) dropped(sb *checkpoint.Sandbox, err error) {
	msg := fmt.Sprintf("%v; its ADD never completed and this error cannot change on retry, so it was dropped from the record", err)
	m.Log.Warn("attachment dropped", "pod", podOf(sb).String(), "containerID", sb.ContainerID, "err", err)
	if sb.PodName != "" {
		m.Events.Warning(podRef(podOf(sb)), status.ReasonAttachmentDropped, msg)
	}
}

// Check runs the delegates' CHECK for every recorded attachment.
func (m *Manager) Check(ctx context.Context, in *cniapi.Request) error {
	req, err := decode(in)
	if err != nil {
		return err
	}
	defer m.lock(req.ContainerID)()
	sb, err := m.Store.Load(req.ContainerID)
	if err != nil {
		return fmt.Errorf("pod %s: CHECK: %w", req.pod, err)
	}
	for i := range sb.Attachments {
		a := &sb.Attachments[i]
		if a.State != checkpoint.Added {
			return fmt.Errorf("pod %s: network %q (%s): ADD never completed", req.pod, a.Network, a.IfName)
		}
		if err := m.Delegates.Check(ctx, invocation(sb, a)); err != nil {
			return fmt.Errorf("pod %s: network %q (%s): CHECK: %w", req.pod, a.Network, a.IfName, err)
		}
		if err := m.checkDefaultRoute(sb, a); err != nil {
			return fmt.Errorf("pod %s: network %q (%s): CHECK: %w", req.pod, a.Network, a.IfName, err)
		}
	}
	return nil
}

// checkDefaultRoute verifies that an attachment which moved the pod's default route (its
// element's default-route, recorded in Meta) still carries it: the plugins' own CHECK accepts
// any default route.
func (m *Manager) checkDefaultRoute(sb *checkpoint.Sandbox, a *checkpoint.Attachment) error {
	gws := a.Meta["default-route"]
	if gws == "" || m.Routes == nil {
		return nil
	}
	for _, gw := range strings.Split(gws, ",") {
		if err := m.Routes.CheckDefaultRoute(sb.Netns, a.IfName, net.ParseIP(gw)); err != nil {
			return err
		}
	}
	return nil
}

// podOf names the sandbox's pod for messages.
func podOf(sb *checkpoint.Sandbox) plan.Pod {
	return plan.Pod{Namespace: sb.PodNamespace, Name: sb.PodName, UID: sb.PodUID}
}
