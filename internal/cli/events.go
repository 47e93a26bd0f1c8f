package cli

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"

	"github.com/multinet/multinet/internal/status"
)

// podEvents are multinet's Events by pod UID.
type podEvents map[types.UID][]corev1.Event

// listEvents lists multinet's Events (source component multinet) in namespace ("" for
// all), grouped by the pod they are about; pod narrows it to one pod when not nil.
func listEvents(ctx context.Context, c *clients, namespace string, pod *corev1.Pod) (podEvents, error) {
	set := fields.Set{"source": status.Component, "involvedObject.kind": "Pod"}
	if pod != nil {
		set["involvedObject.name"], set["involvedObject.uid"] = pod.Name, string(pod.UID)
	}
	list, err := c.core.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: set.AsSelector().String()})
	if err != nil {
		return nil, fmt.Errorf("list multinet's events in namespace %q: %w", namespace, err)
	}
	out := podEvents{}
	for _, ev := range list.Items {
		out[ev.InvolvedObject.UID] = append(out[ev.InvolvedObject.UID], ev)
	}
	return out, nil
}

// eventTime is when the event was last seen.
func eventTime(ev *corev1.Event) time.Time {
	t := ev.LastTimestamp.Time
	if ev.EventTime.After(t) {
		t = ev.EventTime.Time
	}
	if ev.Series != nil && ev.Series.LastObservedTime.After(t) {
		t = ev.Series.LastObservedTime.Time
	}
	if t.IsZero() {
		t = ev.FirstTimestamp.Time
	}
	return t
}

// seen is the set of event occurrences already there, to tell new ones apart without
// comparing timestamps of second precision.
type seen map[string]int32

func seenOf(events []corev1.Event) seen {
	s := seen{}
	for _, ev := range events {
		s[ev.Name] = ev.Count
	}
	return s
}

// fresh returns the newest of the events not in s that match.
func (s seen) fresh(events []corev1.Event, match func(*corev1.Event) bool) *corev1.Event {
	var newest *corev1.Event
	for i := range events {
		ev := &events[i]
		count, ok := s[ev.Name]
		if ok && count >= ev.Count || !match(ev) {
			continue
		}
		if newest == nil || !eventTime(ev).Before(eventTime(newest)) {
			newest = ev
		}
	}
	return newest
}
