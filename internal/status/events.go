package status

import (
	"crypto/rand"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/multinet/multinet/internal/coreapi"
)

// Reasons of the Events multinet posts on pods.
const (
	// ReasonAddedInterface (Normal): an interface was attached, see
	// AddedInterfaceMessage.
	ReasonAddedInterface = "AddedInterface"
	// ReasonNetworkSetupFailed (Warning): a delegate ADD failed.
	ReasonNetworkSetupFailed = "NetworkSetupFailed"
	// ReasonNetworkPolicyFailed (Warning): the MultiNetworkPolicy rules of an interface could
	// not be programmed (the ADD or plug fails; for a running pod, it is retried).
	ReasonNetworkPolicyFailed = "NetworkPolicyFailed"
	// ReasonNetworkTeardownFailed (Warning): a delegate DEL failed.
	ReasonNetworkTeardownFailed = "NetworkTeardownFailed"
	// ReasonAttachmentDropped (Warning): an attachment whose ADD never
	// completed and whose DEL fails for good was dropped from the record.
	ReasonAttachmentDropped = "AttachmentDropped"
	// ReasonCheckpointCorrupt (Warning): a sandbox's checkpoint record was
	// corrupt; DEL detached what could be read of it and set a copy aside.
	ReasonCheckpointCorrupt = "CheckpointCorrupt"
	// ReasonPlugged (Normal): hot plug attached an interface to a running pod.
	ReasonPlugged = "Plugged"
	// ReasonUnplugged (Normal): hot plug detached an interface from a running pod.
	ReasonUnplugged = "Unplugged"
	// ReasonPlugFailed (Warning): a hot plug's delegate ADD failed; it is retried.
	ReasonPlugFailed = "PlugFailed"
	// ReasonUnplugFailed (Warning): a hot unplug's delegate DEL failed; it is retried.
	ReasonUnplugFailed = "UnplugFailed"
	// ReasonInvalidNetworkSelection (Warning): the networks annotation or a
	// NetworkAttachmentDefinition it names is not usable.
	ReasonInvalidNetworkSelection = "InvalidNetworkSelection"
	// ReasonNetworkStatusFailed (Warning): the network-status annotation
	// could not be written.
	ReasonNetworkStatusFailed = "NetworkStatusFailed"
	// ReasonDeviceNotResolved (Warning): a device-backed network's device could not be
	// found among the pod's ResourceClaims (not allocated yet, none providing it, ...).
	ReasonDeviceNotResolved = "DeviceNotResolved"
	// ReasonClaimStatusFailed (Warning): the status of a device-backed attachment could not
	// be written on its ResourceClaim.
	ReasonClaimStatusFailed = "ClaimStatusFailed"
	// ReasonHotplugRefused (Warning): an edit of a running pod's networks asks for a network
	// that cannot be hot plugged (a device-backed one).
	ReasonHotplugRefused = "HotplugRefused"
)

// Component is the source component of multinet's Events.
const Component = "multinet"

// flushTimeout bounds how long stop waits for queued Events to be sent.
const flushTimeout = 5 * time.Second

// EventRecorder posts Events about pods. It never blocks on the API.
type EventRecorder interface {
	Warning(pod PodRef, reason, message string)
	Normal(pod PodRef, reason, message string)
}

// NewEventRecorder returns a recorder that posts core/v1 Events for pods to sink
// (involvedObject kind Pod with namespace, name and uid), with source
// component "multinet" and host node. stop sends the Events already
// recorded (waiting at most a few seconds) and stops the recorder; call it
// once, after the last Warning or Normal.
func NewEventRecorder(sink record.EventSink, node string) (rec EventRecorder, stop func()) {
	fs := &flushSink{
		EventSink: sink,
		marker:    "multinet-flush/" + rand.Text(), // "/" is not valid in a pod name
		flushed:   make(chan struct{}),
	}
	b := record.NewBroadcaster()
	b.StartRecordingToSink(fs)
	r := podRecorder{b.NewRecorder(coreapi.Scheme, corev1.EventSource{Component: Component, Host: node})}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			r.rec.Event(&corev1.ObjectReference{Kind: "Pod", Name: fs.marker}, corev1.EventTypeNormal, "Flush", "flush")
			select {
			case <-fs.flushed:
			case <-time.After(flushTimeout):
			}
			b.Shutdown()
		})
	}
	return r, stop
}

// podRecorder adapts a client-go recorder to pods named by PodRef.
type podRecorder struct{ rec record.EventRecorder }

func (r podRecorder) Warning(pod PodRef, reason, message string) {
	r.rec.Event(podObject(pod), corev1.EventTypeWarning, reason, message)
}

func (r podRecorder) Normal(pod PodRef, reason, message string) {
	r.rec.Event(podObject(pod), corev1.EventTypeNormal, reason, message)
}

// podObject is the involvedObject of an Event about pod.
func podObject(pod PodRef) *corev1.ObjectReference {
	return &corev1.ObjectReference{
		APIVersion: "v1",
		Kind:       "Pod",
		Namespace:  pod.Namespace,
		Name:       pod.Name,
		UID:        pod.UID,
	}
}

// flushSink sends Events to the API, except the marker Event that stop
// records last: Events reach the sink in order, one at a time, so seeing
// the marker means every Event recorded before it has been sent.
type flushSink struct {
	record.EventSink
	marker  string
	flushed chan struct{}
}

func (s *flushSink) Create(e *corev1.Event) (*corev1.Event, error) {
	if e.InvolvedObject.Name == s.marker {
		close(s.flushed)
		return e, nil
	}
	return s.EventSink.Create(e)
}
