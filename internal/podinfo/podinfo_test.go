package podinfo

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadfake "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned/fake"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned/typed/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/multinet/multinet/internal/coreapi"
	"github.com/multinet/multinet/internal/coreapi/coreapitest"
)

func TestNotSyncedSaysTheAPIServerIsNotReachable(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1", Timeout: time.Second}
	client, err := coreapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nads, err := nadclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := New(client, nads, "node-a")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Synced(); !errors.Is(err, ErrNotSynced) || !strings.Contains(err.Error(), "in progress") {
		t.Fatalf("Synced before the first list = %v, want ErrNotSynced, first list in progress", err)
	}
	s.Start(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Synced()
		if !errors.Is(err, ErrNotSynced) {
			t.Fatalf("Synced with no API server = %v, want ErrNotSynced", err)
		}
		if strings.Contains(err.Error(), "the API server is not reachable") && strings.Contains(err.Error(), "127.0.0.1:1") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Synced with no API server = %v, want it to say the API server is not reachable", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCachesHoldTrimmedObjects(t *testing.T) {
	meta := func(name string, ann map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name),
			Annotations: ann, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}
	}
	pod := &corev1.Pod{
		ObjectMeta: meta("web", map[string]string{"k8s.v1.cni.cncf.io/networks": "blue", lastApplied: `{"big":"copy"}`}),
		Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"},
	}
	nad := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: meta("blue", map[string]string{lastApplied: `{"big":"copy"}`}),
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: `{"type":"bridge"}`},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Created, not given to the fake: its tracker would file it under another resource name.
	nads := nadfake.NewSimpleClientset()
	if _, err := nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions("ns").Create(ctx, nad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := New(coreapitest.Clientset{Interface: fake.NewClientset(pod)}, fakeNADs{nads.K8sCniCncfIoV1()}, "node-a")
	s.Start(ctx)
	if !s.WaitForSync(ctx) || s.Synced() != nil {
		t.Fatalf("caches did not sync: %v", s.Synced())
	}
	got, err := s.Pod(ctx, "ns", "web", string(pod.UID))
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations["k8s.v1.cni.cncf.io/networks"] != "blue" || got.Spec.NodeName != "node-a" || got.Status.Phase != corev1.PodRunning {
		t.Errorf("cached pod lost what multinet reads: %+v", got)
	}
	if _, ok := got.Annotations[lastApplied]; ok || got.ManagedFields != nil || got.Spec.Containers != nil || got.Status.PodIP != "" {
		t.Errorf("cached pod not trimmed: %+v", got)
	}
	gotNAD, err := s.NAD(ctx, "ns", "blue")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := gotNAD.Annotations[lastApplied]; ok || gotNAD.ManagedFields != nil || gotNAD.Spec.Config != nad.Spec.Config {
		t.Errorf("cached NAD = %+v, want its config without managed fields and kubectl's copy", gotNAD)
	}
}

// fakeNADs is the NAD fake's client. Generated before client-go v0.35, it does not say what
// every client-go fake says: it cannot stream a watch-list, so an informer over it must list.
type fakeNADs struct {
	nadclient.NetworkAttachmentDefinitionsGetter
}

func (fakeNADs) IsWatchListSemanticsUnSupported() bool { return true }

// TestStreamRefusedIsNoFailure: an API server without the WatchList feature (1.27 to 1.31,
// 1.33) refuses the watch-list stream the informers ask for first; they list instead, and
// the refusal is no list error: the caches sync and ListErr stays nil.
func TestStreamRefusedIsNoFailure(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "uid-web"},
		Spec: corev1.PodSpec{NodeName: "node-a"}}
	pods := &refusingPods{Clientset: coreapitest.Clientset{Interface: fake.NewClientset(pod)}}
	s := New(pods, fakeNADs{nadfake.NewSimpleClientset().K8sCniCncfIoV1()}, "node-a")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.Start(ctx)
	if !s.WaitForSync(ctx) || s.Synced() != nil {
		t.Fatalf("caches did not sync: %v", s.Synced())
	}
	if pods.refused.Load() == 0 {
		t.Error("the pod informer did not ask for a watch-list stream")
	}
	if err := s.ListErr(); err != nil {
		t.Errorf("ListErr = %v after a refused stream and a list, want nil", err)
	}
	if _, err := s.Pod(ctx, "ns", "web", "uid-web"); err != nil {
		t.Error(err)
	}
}

// refusingPods answers pods like an API server without the WatchList feature: it refuses a
// watch that asks for the initial events.
type refusingPods struct {
	coreapitest.Clientset
	refused atomic.Int32
}

func (p *refusingPods) WatchPods(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	if opts.SendInitialEvents != nil && *opts.SendInitialEvents {
		p.refused.Add(1)
		return nil, apierrors.NewBadRequest("sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled")
	}
	return p.Clientset.WatchPods(ctx, namespace, opts)
}

// IsWatchListSemanticsUnSupported is false: the informer asks for a stream, as of a server.
func (*refusingPods) IsWatchListSemanticsUnSupported() bool { return false }
