package testbed

import (
	"context"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// callTimeout bounds each API call the helpers make.
const callTimeout = 30 * time.Second

// CreateNamespace creates a namespace.
func (c *ControlPlane) CreateNamespace(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("testbed: creating namespace %s: %v", name, err)
	}
}

// CreatePod creates a Pod object bound to node (no scheduler runs) with one "pause"
// container, no service account token and the given annotations, and returns it as
// stored, with its UID. Nothing runs it: the test plays the runtime.
func (c *ControlPlane) CreatePod(t testing.TB, namespace, name, node string, annotations map[string]string) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	automount := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Annotations: annotations},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			AutomountServiceAccountToken: &automount,
			Containers:                   []corev1.Container{{Name: "pause", Image: "pause"}},
		},
	}
	created, err := c.Client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("testbed: creating pod %s/%s: %v", namespace, name, err)
	}
	return created
}

// CreateNAD creates a NetworkAttachmentDefinition whose spec.config is config.
func (c *ControlPlane) CreateNAD(t testing.TB, namespace, name, config string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	nad := &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: config},
	}
	_, err := c.NADClient.K8sCniCncfIoV1().NetworkAttachmentDefinitions(namespace).Create(ctx, nad, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("testbed: creating network-attachment-definition %s/%s: %v", namespace, name, err)
	}
}
