package status

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/multinet/multinet/internal/coreapi/coreapitest"
)

// podEvents lists the Events of ref's namespace.
func podEvents(t *testing.T, client kubernetes.Interface, ref PodRef) []corev1.Event {
	t.Helper()
	list, err := client.CoreV1().Events(ref.Namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	return list.Items
}

// checkEvent fails unless e is about ref, from multinet on node.
func checkEvent(t *testing.T, e corev1.Event, ref PodRef, node, typ, reason, message string) {
	t.Helper()
	o := e.InvolvedObject
	if o.Kind != "Pod" || o.Namespace != ref.Namespace || o.Name != ref.Name || o.UID != ref.UID {
		t.Errorf("involvedObject = %+v, want pod %s/%s uid %s", o, ref.Namespace, ref.Name, ref.UID)
	}
	if e.Type != typ || e.Reason != reason || e.Message != message {
		t.Errorf("event = %s %s %q, want %s %s %q", e.Type, e.Reason, e.Message, typ, reason, message)
	}
	if e.Source.Component != Component || e.Source.Host != node {
		t.Errorf("source = %+v, want %s on %s", e.Source, Component, node)
	}
}

func TestEventRecorderPostsPodEvents(t *testing.T) {
	client := fake.NewClientset()
	rec, stop := NewEventRecorder(coreapitest.Clientset{Interface: client}.EventSink(), "node-a")
	defer stop()
	rec.Warning(web0, ReasonInvalidNetworkSelection, `network "net/nope": not found`)

	var events []corev1.Event
	waitFor(t, "the event is posted", func() bool {
		events = podEvents(t, client, web0)
		return len(events) > 0
	})
	if len(events) != 1 {
		t.Fatalf("events = %d, want 1", len(events))
	}
	checkEvent(t, events[0], web0, "node-a", corev1.EventTypeWarning, ReasonInvalidNetworkSelection, `network "net/nope": not found`)
}

func TestEventRecorderStopFlushes(t *testing.T) {
	client := fake.NewClientset()
	rec, stop := NewEventRecorder(coreapitest.Clientset{Interface: client}.EventSink(), "node-a")
	rec.Normal(web0, ReasonAddedInterface, "Add net1 [10.1.0.5/24] from net/storage")
	stop()
	stop() // a second stop is harmless

	events := podEvents(t, client, web0)
	if len(events) != 1 {
		t.Fatalf("events after stop = %d, want 1", len(events))
	}
	checkEvent(t, events[0], web0, "node-a", corev1.EventTypeNormal, ReasonAddedInterface, "Add net1 [10.1.0.5/24] from net/storage")
}
