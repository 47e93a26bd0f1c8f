package testbed

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// BusyboxPod returns a pod of the busybox test image that sleeps, with annotations; the
// scheduler binds it to the node.
func BusyboxPod(namespace, name string, annotations map[string]string) *corev1.Pod {
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Annotations: annotations,
			Labels: map[string]string{"app": "testbed-busybox"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "busybox", Image: BusyboxImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sleep", "36000"},
			}},
		},
	}
}

// CreatePodObject creates pod and returns it as stored.
func (c *Cluster) CreatePodObject(t testing.TB, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	created, err := c.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("testbed: creating pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	return created
}

// WaitPodRunning waits until the pod is Running with all containers ready, and returns it.
// On timeout it fails the test with the pod's phase and its Events.
func (c *Cluster) WaitPodRunning(t testing.TB, namespace, name string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	return c.WaitPodRunningSince(t, namespace, name, time.Time{}, timeout)
}

// WaitPodRunningSince is WaitPodRunning for a container started at or after since (a pod
// restarted by a node reboot: its status says Running from before until the kubelet syncs).
func (c *Cluster) WaitPodRunningSince(t testing.TB, namespace, name string, since time.Time, timeout time.Duration) *corev1.Pod {
	t.Helper()
	since = since.Truncate(time.Second) // the API's times have seconds
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		return podReady(p) && startedSince(p, since), nil
	})
	if err != nil {
		phase := "not found"
		if pod != nil {
			phase = string(pod.Status.Phase)
		}
		t.Fatalf("testbed: pod %s/%s not running after %s (phase %s): %v\nevents:\n%s", namespace, name, timeout, phase, err, c.PodEvents(t, namespace, name))
	}
	return pod
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

func startedSince(p *corev1.Pod, since time.Time) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil || cs.State.Running.StartedAt.Time.Before(since) {
			return false
		}
	}
	return true
}

// PodEvents returns the pod's Events, one a line (reason: message).
func (c *Cluster) PodEvents(t testing.TB, namespace, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	evs, err := c.Client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return err.Error()
	}
	var s string
	for _, e := range evs.Items {
		s += fmt.Sprintf("  %s %s (x%d): %s\n", e.Type, e.Reason, e.Count, e.Message)
	}
	return s
}

// DeletePod deletes a pod and waits until it is gone (its sandbox stopped, CNI DEL done).
func (c *Cluster) DeletePod(t testing.TB, namespace, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := c.Client.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("testbed: deleting pod %s/%s: %v", namespace, name, err)
	}
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("testbed: pod %s/%s not gone: %v", namespace, name, err)
	}
}

// Exec runs a command in the pod's first container with kubectl exec and returns its output.
func (c *Cluster) Exec(t testing.TB, namespace, pod string, cmd ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := c.KubectlCmd(ctx, append([]string{"exec", "-n", namespace, pod, "--"}, cmd...)...).CombinedOutput()
	return string(out), err
}

// MustExec is Exec failing the test on an error. Errors of a kubelet that has just
// (re)started and not yet synced its pods ("pod does not exist") are retried for a minute.
func (c *Cluster) MustExec(t testing.TB, namespace, pod string, cmd ...string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := c.Exec(t, namespace, pod, cmd...)
		if err == nil {
			return out
		}
		if time.Now().After(deadline) || !strings.Contains(out, "unable to upgrade connection") {
			t.Fatalf("kubectl exec %s/%s %v: %v\n%s", namespace, pod, cmd, err, out)
		}
		time.Sleep(time.Second)
	}
}
