package attach

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/status"
)

// Republish writes the network-status of the pod's live sandbox again when the pod's copy
// (the informer's) says something else than the sandbox's record; nothing is plugged or
// unplugged. It is Reconcile for a daemon with hot plug off, so that a value lost to a stop or
// given up on during an API outage is still written again.
func (m *Manager) Republish(pod *corev1.Pod) {
	if pod.DeletionTimestamp != nil {
		return
	}
	ids := m.Store.ByPod(string(pod.UID))
	if len(ids) != 1 {
		return // no record, or two and the runtime's DEL of one pending
	}
	defer m.lock(ids[0])()
	sb, err := m.Store.Load(ids[0])
	if err != nil || !live(sb) {
		return
	}
	m.republish(&request{pod: podOf(sb)}, pod, sb)
}

// republish queues the sandbox's network-status, built from its record, when pod's annotation
// differs from it (compared decoded, not byte for byte). It costs no API request when they
// agree: pod is the informer's copy. A record whose status cannot be built was reported when
// it was published; it is not reported again on every pass.
func (m *Manager) republish(req *request, pod *corev1.Pod, sb *checkpoint.Sandbox) {
	if req.pod.Name == "" {
		return
	}
	value, err := networkStatus(sb, m.IPAMDNS)
	if err != nil {
		m.Log.Debug("network-status not republished", "pod", req.pod.String(), "containerID", sb.ContainerID, "err", err)
		return
	}
	if status.Same(pod.Annotations[status.Annotation], value) {
		return
	}
	m.Log.Info("network-status differs from the record: writing it again", "pod", req.pod.String(), "containerID", sb.ContainerID)
	m.Annotations.Set(podRef(req.pod), value)
}
