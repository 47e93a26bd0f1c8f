package attach

import (
	"fmt"
	"strings"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/plan"
	"github.com/multinet/multinet/internal/status"
)

// salvage turns a corrupt record (torn by a power loss with syncCheckpoints off, or
// damaged) into one DEL can work from: a copy goes to the store's corrupt/ directory for the
// operator, and the record is replaced by what can still be read of it (the sandbox's
// fields and each attachment written whole), or removed when nothing of it can. The pod
// (from the record, else from the runtime's arguments) gets a Warning Event saying which
// networks were recovered. The networks that were not leave their plugins' state (an
// IPAM's address) behind: their interfaces go with the sandbox's netns, and the cluster
// network's plugins collect theirs at the next CNI GC.
func (m *Manager) salvage(ce *checkpoint.CorruptError, pod plan.Pod) (*checkpoint.Sandbox, error) {
	sb := ce.Salvaged
	if sb.PodName == "" && pod.Name != "" {
		sb.PodNamespace, sb.PodName, sb.PodUID = pod.Namespace, pod.Name, pod.UID
	}
	aside, err := m.Store.SetAside(ce)
	if err != nil {
		return nil, err
	}
	if len(sb.Attachments) > 0 {
		err = m.Store.Save(sb)
	} else {
		err = m.Store.Remove(sb.ContainerID)
	}
	if err != nil {
		return nil, fmt.Errorf("replace corrupt checkpoint %s: %w", ce.Path, err)
	}
	recovered := make([]string, len(sb.Attachments))
	for i, a := range sb.Attachments {
		recovered[i] = fmt.Sprintf("%s (%s)", a.Network, a.IfName)
	}
	m.Log.Warn("corrupt checkpoint record set aside", "pod", podOf(sb).String(), "containerID", sb.ContainerID,
		"copy", aside, "recovered", recovered, "err", ce.Err)
	if sb.PodName != "" {
		m.Events.Warning(podRef(podOf(sb)), status.ReasonCheckpointCorrupt, corruptMessage(sb, aside, recovered, ce))
	}
	return sb, nil
}

func corruptMessage(sb *checkpoint.Sandbox, aside string, recovered []string, ce *checkpoint.CorruptError) string {
	got := "none of its networks could be read"
	if len(recovered) > 0 {
		got = "networks read from it and detached: " + strings.Join(recovered, ", ")
	}
	return fmt.Sprintf("checkpoint record of sandbox %s was corrupt (%v; a copy is at %s); %s. Networks not read "+
		"keep what their plugins hold for the sandbox (an IPAM's address) until those plugins' garbage collection",
		sb.ContainerID, ce.Err, aside, got)
}
