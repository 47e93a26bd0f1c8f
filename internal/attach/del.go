package attach

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

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
	if err := m.delSandbox(ctx, req.ContainerID, req.Netns); err != nil {
		m.warn(req, status.ReasonNetworkTeardownFailed, err)
		return err
	}
	return nil
}

// delSandbox DELs the attachments newest first; each leaves the record only once its DEL
// succeeded, and the record goes when the last one did. Callers hold the sandbox lock.
func (m *Manager) delSandbox(ctx context.Context, containerID, netns string) error {
	sb, err := m.Store.Load(containerID)
	if errors.Is(err, checkpoint.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	sb.Netns = delNetns(netns, sb.Netns)
	for i := len(sb.Attachments) - 1; i >= 0; i-- {
		if err := m.detachOne(ctx, sb, sb.Attachments[i].IfName); err != nil {
			return fmt.Errorf("pod %s/%s: %w", sb.PodNamespace, sb.PodName, err)
		}
	}
	m.Log.Info("detached", "pod", sb.PodNamespace+"/"+sb.PodName, "containerID", containerID)
	return m.Store.Remove(containerID)
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

// detachOne DELs one attachment and drops it from the record.
func (m *Manager) detachOne(ctx context.Context, sb *checkpoint.Sandbox, ifname string) error {
	i := sb.Find(ifname)
	if i < 0 {
		return nil
	}
	a := &sb.Attachments[i]
	if err := m.Delegates.Del(ctx, invocation(sb, a)); err != nil {
		return fmt.Errorf("network %q (%s): DEL: %w", a.Network, a.IfName, err)
	}
	sb.Attachments = slices.Delete(sb.Attachments, i, i+1)
	if len(sb.Attachments) == 0 {
		return nil // the caller removes the record
	}
	return m.Store.Update(sb)
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
	}
	return nil
}

// podOf names the sandbox's pod for messages.
func podOf(sb *checkpoint.Sandbox) plan.Pod {
	return plan.Pod{Namespace: sb.PodNamespace, Name: sb.PodName, UID: sb.PodUID}
}
