package status

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/multinet/multinet/internal/coreapi"
	"github.com/multinet/multinet/internal/testbed"
)

// TestUIDPreconditionOnARealAPIServer proves that the merge patch's
// metadata.uid keeps a value meant for a deleted pod off its namesake: a
// real kube-apiserver rejects it, and the Patcher gives up without retrying.
func TestUIDPreconditionOnARealAPIServer(t *testing.T) {
	cp := testbed.StartControlPlane(t)
	cp.CreateNamespace(t, "net")
	old := cp.CreatePod(t, "net", "web-0", "node-a", nil)
	oldRef := PodRef{Namespace: "net", Name: "web-0", UID: old.UID}

	client, err := coreapi.New(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	p := NewPatcher(client, slog.New(slog.NewJSONHandler(logs, nil)))
	run(t, p)
	p.Set(oldRef, "v1")
	waitFor(t, "the annotation lands on the pod", func() bool { return realAnnotation(t, cp, oldRef) == "v1" })

	deletePodNow(t, cp, "net", "web-0")
	fresh := cp.CreatePod(t, "net", "web-0", "node-a", nil)
	freshRef := PodRef{Namespace: "net", Name: "web-0", UID: fresh.UID}

	body, err := patchBody(oldRef.UID, "stale")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cp.Client.CoreV1().Pods("net").Patch(t.Context(), "web-0", types.MergePatchType, body, metav1.PatchOptions{})
	if !uidMismatch(err) {
		t.Fatalf("patch with the old uid: error %v, want a rejected metadata.uid", err)
	}

	p.Set(oldRef, "stale")
	waitFor(t, "the patcher gives up", p.idle)
	if got := realAnnotation(t, cp, freshRef); got != "" {
		t.Errorf("new pod got the old pod's annotation %q", got)
	}
	if n := logs.count("giving up on network-status"); n != 1 || !logs.has(reasonPodReplaced) {
		t.Errorf("give-up logged %d times, want once with reason %q", n, reasonPodReplaced)
	}

	p.Set(freshRef, "v2")
	waitFor(t, "the annotation lands on the new pod", func() bool { return realAnnotation(t, cp, freshRef) == "v2" })
}

// TestEventsOnARealAPIServer checks an Event as kube-apiserver stores it,
// sent by stop's flush.
func TestEventsOnARealAPIServer(t *testing.T) {
	cp := testbed.StartControlPlane(t)
	cp.CreateNamespace(t, "net")
	pod := cp.CreatePod(t, "net", "web-0", "node-a", nil)
	ref := PodRef{Namespace: "net", Name: "web-0", UID: pod.UID}

	client, err := coreapi.New(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	rec, stop := NewEventRecorder(client.EventSink(), "node-a")
	// The same Event twice: the broadcaster creates it, then patches its count.
	rec.Warning(ref, ReasonNetworkSetupFailed, `network "net/storage": macvlan ADD: link not found`)
	rec.Warning(ref, ReasonNetworkSetupFailed, `network "net/storage": macvlan ADD: link not found`)
	stop()

	events := podEvents(t, cp.Client, ref)
	if len(events) != 1 {
		t.Fatalf("events = %d, want 1", len(events))
	}
	checkEvent(t, events[0], ref, "node-a", corev1.EventTypeWarning, ReasonNetworkSetupFailed, `network "net/storage": macvlan ADD: link not found`)
	if events[0].Count != 2 {
		t.Errorf("count = %d, want 2 (the repeat patched onto the first)", events[0].Count)
	}
}

func realAnnotation(t *testing.T, cp *testbed.ControlPlane, ref PodRef) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	pod, err := cp.Client.CoreV1().Pods(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod: %v", err)
	}
	if pod.UID != ref.UID {
		t.Fatalf("pod %s/%s has uid %s, want %s", ref.Namespace, ref.Name, pod.UID, ref.UID)
	}
	return pod.Annotations[Annotation]
}

// deletePodNow deletes a pod at once (no kubelet runs to finish a graceful
// deletion) and waits until it is gone.
func deletePodNow(t *testing.T, cp *testbed.ControlPlane, namespace, name string) {
	t.Helper()
	zero := int64(0)
	err := cp.Client.CoreV1().Pods(namespace).Delete(t.Context(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil {
		t.Fatalf("delete pod: %v", err)
	}
	waitFor(t, "the pod is gone", func() bool {
		_, err := cp.Client.CoreV1().Pods(namespace).Get(t.Context(), name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}
