package attach

import (
	"context"
	"errors"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/plan"
	"github.com/multinet/multinet/internal/selection"
	"github.com/multinet/multinet/internal/status"
)

// ErrInvalidEdit marks a networks annotation that cannot be applied as it stands (its syntax):
// retrying changes nothing until the annotation is edited again.
var ErrInvalidEdit = errors.New("invalid networks annotation")

// Reconcile is hot plug: it brings every live sandbox of the pod in line with the pod's
// networks annotation as it is now. The checkpoint record says what is attached; the
// annotation, parsed and resolved by the same code as ADD, says what should be. Attachments
// nobody asks for any more are DELed (unplugged) first, then the networks nobody attached
// yet are ADDed (plugged), each through the ADD path with its intent record and rollback;
// the eth0 of the cluster network is never touched. It holds the sandbox lock, so it never
// runs beside the runtime's ADD, DEL or CHECK of the sandbox, and it leaves pods being
// deleted alone. Calling it again with nothing changed does nothing.
//
// It also republishes: when nothing was plugged or unplugged, the pod's network-status (as
// pod, the informer's copy, has it) is compared with the one the record gives, and written
// when they differ — a value lost to a stop or given up on during an API outage.
func (m *Manager) Reconcile(ctx context.Context, pod *corev1.Pod) error {
	ids := m.Store.ByPod(string(pod.UID))
	if pod.DeletionTimestamp != nil || len(ids) == 0 {
		m.invalid.Delete(string(pod.UID))
		return nil
	}
	var errs []error
	for _, id := range ids {
		errs = append(errs, m.reconcileSandbox(ctx, pod, id, len(ids) == 1))
	}
	return errors.Join(errs...)
}

// reconcileSandbox plugs and unplugs one sandbox of the pod, and publishes its network-status
// after a change; sole (the pod's only record) also republishes it unchanged when the pod's
// differs (with two records, the runtime's DEL of one is pending: it is left to the next pass).
func (m *Manager) reconcileSandbox(ctx context.Context, pod *corev1.Pod, id string, sole bool) error {
	defer m.lock(id)()
	sb, err := m.Store.Load(id)
	if errors.Is(err, checkpoint.ErrNotFound) {
		return nil // DELed meanwhile
	}
	if err != nil {
		return err
	}
	if !live(sb) {
		return nil
	}
	req := &request{Request: &cniapi.Request{Command: "PLUG", ContainerID: id, Netns: sb.Netns}, pod: podOf(sb)}
	changed, err := m.applyNetworks(ctx, req, pod, sb)
	if !changed && !sole {
		return err
	}
	if sb, lerr := m.Store.Load(id); lerr == nil {
		if changed {
			m.publish(req, sb)
		} else {
			m.republish(req, pod, sb)
		}
	}
	return err
}

// applyNetworks unplugs and plugs what the pod's networks annotation asks for; changed says
// whether it tried anything.
func (m *Manager) applyNetworks(ctx context.Context, req *request, pod *corev1.Pod, sb *checkpoint.Sandbox) (changed bool, err error) {
	req.annotation = selection.Raw(pod.Annotations)
	defer func() {
		if !errors.Is(err, ErrInvalidEdit) {
			m.invalid.Delete(req.pod.UID)
		}
	}()
	nets, err := m.networks(ctx, pod)
	if err != nil {
		if errors.As(err, new(*selection.Error)) {
			return false, m.invalidEdit(req, status.ReasonInvalidNetworkSelection, err)
		}
		err = fmt.Errorf("pod %s: %w", req.pod, err)
		m.warn(req, status.ReasonInvalidNetworkSelection, err)
		return false, err
	}
	unplug, plug := plan.Match(nets, attachedOf(sb))
	if len(unplug) == 0 && len(plug) == 0 {
		return false, nil
	}
	// Plugs wait for every unplug to succeed: a name may be moving, and an unplug that failed
	// must be retried, not hidden behind a plug refused for a name still in use.
	err = m.unplug(ctx, req, sb, unplug)
	if err == nil {
		err = m.plug(ctx, req, nets, plug)
	}
	return true, err
}

// invalidEdit marks err, the fault of a networks annotation that cannot be applied as it
// stands, as ErrInvalidEdit, with a Warning of reason once per annotation value
// (req.annotation): a resync pass over the same value reports nothing new.
func (m *Manager) invalidEdit(req *request, reason string, err error) error {
	if reason == status.ReasonHotplugRefused { // the annotation is valid: say only why it is refused
		err = fmt.Errorf("pod %s: %w", req.pod, refusedEdit{err})
	} else {
		err = fmt.Errorf("pod %s: %w: %w", req.pod, ErrInvalidEdit, err)
	}
	if last, seen := m.invalid.Swap(req.pod.UID, req.annotation); !seen || last != req.annotation {
		m.warn(req, reason, err)
	}
	return err
}

// refusedEdit is an edit that cannot be applied though the annotation is valid: it reads as
// its cause, and is ErrInvalidEdit (not retried until the next edit).
type refusedEdit struct{ error }

func (r refusedEdit) Unwrap() []error { return []error{ErrInvalidEdit, r.error} }

// live tells whether the sandbox is up: its cluster network attached, its netns there.
func live(sb *checkpoint.Sandbox) bool {
	if sb.Netns == "" {
		return false
	}
	if _, err := os.Stat(sb.Netns); err != nil {
		return false
	}
	for _, a := range sb.Attachments {
		if a.Default {
			return a.State == checkpoint.Added
		}
	}
	return false
}

// attachedOf lists the sandbox's secondary attachments as plan.Match sees them.
func attachedOf(sb *checkpoint.Sandbox) []plan.Attached {
	var out []plan.Attached
	for _, a := range sb.Attachments {
		if a.Default {
			continue
		}
		id := string(a.Selection)
		if id == "" {
			id = plan.LegacyIdentity(a.Network, a.IfName)
		}
		out = append(out, plan.Attached{IfName: a.IfName, Identity: id, Complete: a.State == checkpoint.Added})
	}
	return out
}

// unplug DELs the attachments on ifnames, newest first, each with an Unplugged or
// UnplugFailed Event, and writes the record once.
func (m *Manager) unplug(ctx context.Context, req *request, sb *checkpoint.Sandbox, ifnames []string) error {
	if len(ifnames) == 0 {
		return nil
	}
	var errs []error
	var goneDevs []checkpoint.Attachment
	for i := len(ifnames) - 1; i >= 0; i-- {
		gone := sb.Attachments[sb.Find(ifnames[i])]
		if _, ok := recordedDevice(&gone); ok {
			goneDevs = append(goneDevs, gone)
		}
		network := gone.Network
		err := m.detachOne(ctx, sb, ifnames[i])
		m.observe("unplug", err)
		if err != nil {
			err = fmt.Errorf("pod %s: unplug: %w", req.pod, err)
			m.warn(req, status.ReasonUnplugFailed, err)
			errs = append(errs, err)
			continue
		}
		if err := m.restoreDefaults(sb, &gone, nil); err != nil {
			m.warn(req, status.ReasonUnplugFailed, fmt.Errorf("pod %s: network %q (%s) unplugged, but the default routes it had replaced could not be put back: %w",
				req.pod, network, ifnames[i], err))
		}
		m.Log.Info("unplugged", "pod", req.pod.String(), "network", network, "ifname", ifnames[i], "containerID", sb.ContainerID)
		m.Events.Normal(podRef(req.pod), status.ReasonUnplugged, fmt.Sprintf("Unplugged %s from %s", ifnames[i], network))
	}
	gone := len(ifnames) - len(errs)
	errs = append(errs, m.save(sb))
	if len(goneDevs) > 0 {
		m.reportClaims(ctx, sb, goneDevs)
	}
	if m.Policy != nil && gone > 0 { // the rules of what was unplugged go with it
		if err := m.Policy.Enforce(ctx, sb); err != nil {
			m.warn(req, status.ReasonUnplugFailed, fmt.Errorf("pod %s: unplugged, but the network policy of the interfaces left was not reprogrammed: %w", req.pod, err))
		}
	}
	return errors.Join(errs...)
}

// plug ADDs the networks nets[idx...] on the lowest free interface names (or their own), one
// at a time through the ADD path, each with a Plugged or PlugFailed Event: one failing
// rolls back itself only.
func (m *Manager) plug(ctx context.Context, req *request, nets []plan.Network, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	sb, err := m.Store.Load(req.ContainerID)
	if err != nil {
		return err
	}
	taken := make([]string, 0, len(sb.Attachments))
	for _, a := range sb.Attachments {
		taken = append(taken, a.IfName)
	}
	if err := refuseDevicePlug(nets, idx); err != nil {
		return m.invalidEdit(req, status.ReasonHotplugRefused, err)
	}
	picked := make([]plan.Network, len(idx))
	for i, j := range idx {
		picked[i] = nets[j]
	}
	delegates, err := plan.Attachments(req.pod, req.ContainerID, picked, taken)
	if err == nil {
		err = checkKeptDefaultRoutes(sb, delegates)
	}
	if err != nil {
		return m.invalidEdit(req, status.ReasonInvalidNetworkSelection, err)
	}
	var errs []error
	for _, d := range delegates {
		sb, err := m.attachAll(ctx, req, []plan.Delegate{d})
		m.observe("plug", err)
		if err != nil {
			m.warn(req, status.ReasonPlugFailed, err)
			errs = append(errs, err)
			continue
		}
		m.Events.Normal(podRef(req.pod), status.ReasonPlugged, addedMessage(&sb.Attachments[sb.Find(d.IfName)]))
	}
	return errors.Join(errs...)
}

func (m *Manager) observe(operation string, err error) {
	if m.ObserveHotplug != nil {
		m.ObserveHotplug(operation, err)
	}
}

// save writes the record, or removes it once no attachment is left.
func (m *Manager) save(sb *checkpoint.Sandbox) error {
	if len(sb.Attachments) == 0 {
		return m.Store.Remove(sb.ContainerID)
	}
	return m.Store.Update(sb)
}
