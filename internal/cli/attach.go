package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/multinet/multinet/internal/selection"
	"github.com/multinet/multinet/internal/status"
)

// pollInterval is how often attach and detach read the pod while they wait.
const pollInterval = 250 * time.Millisecond

// editOptions are the flags attach and detach share.
type editOptions struct {
	root    *root
	timeout time.Duration
}

func (o *editOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&o.timeout, "timeout", 60*time.Second, "How long to wait for network-status to show the change (0: do not wait)")
}

// attachOptions are the flags of `attach`.
type attachOptions struct {
	editOptions
	ips []string
	mac string
}

func newAttachCommand(r *root) *cobra.Command {
	o := &attachOptions{editOptions: editOptions{root: r}}
	cmd := &cobra.Command{
		Use:   "attach POD NET[@IF]",
		Short: "Add a network to a running pod's networks annotation and wait until it is plugged",
		Example: `  kubectl multinet attach web-0 storage
  kubectl multinet attach web-0 shared/storage@stor0 --ips 10.1.0.5/24 --mac 02:00:00:00:00:05`,
		Args:              args(cobra.ExactArgs(2)),
		ValidArgsFunction: completePods(r),
		RunE: func(cmd *cobra.Command, a []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout(), a[0], a[1])
		},
	}
	cmd.Flags().StringSliceVar(&o.ips, "ips", nil, "Addresses to request, CIDR or IP (comma-separated); the annotation becomes JSON")
	cmd.Flags().StringVar(&o.mac, "mac", "", "MAC address to request; the annotation becomes JSON")
	o.addFlags(cmd)
	return cmd
}

func (o *attachOptions) run(ctx context.Context, w io.Writer, podName, netArg string) error {
	want, err := parseNetworkArg(netArg, o.ips, o.mac)
	if err != nil {
		return &usageError{err}
	}
	c, err := o.root.clients()
	if err != nil {
		return err
	}
	var index int
	edit := func(pod *corev1.Pod) (string, error) {
		value, err := appendElement(selection.Raw(pod.Annotations), pod.Namespace, want)
		if err != nil {
			return "", err
		}
		elems, err := selection.Parse(value, pod.Namespace)
		if err != nil {
			return "", fmt.Errorf("pod %s/%s: attaching %s: %w", pod.Namespace, pod.Name, want.item(), err)
		}
		index = len(elems) - 1
		return value, nil
	}
	pod, before, err := editNetworks(ctx, c, podName, edit)
	if err != nil || o.timeout == 0 {
		return err
	}
	done := func(v *PodNetworks) bool { return index < len(v.match) && v.match[index] >= 0 }
	ns := want.Namespace
	if ns == "" {
		ns = pod.Namespace
	}
	v, err := o.wait(ctx, c, pod, before, done, failure{reason: status.ReasonPlugFailed, about: []string{fmt.Sprintf("%q", ns+"/"+want.Name)}})
	if err != nil {
		return o.failed(w, pod, "attach "+want.item(), err)
	}
	s := v.status[v.match[index]]
	fmt.Fprintf(w, "pod %s/%s: attached %s (%s)\n", pod.Namespace, pod.Name, s.Interface, s.Name)
	t := newTable(w, "INTERFACE", "NETWORK", "ADDRESSES", "MAC")
	t.row(s.Interface, s.Name, list(s.IPs), orDash(s.Mac))
	return t.flush()
}

// editNetworks patches the pod's networks annotation with what edit makes of the pod,
// guarded by the pod's resourceVersion and retried on a conflict. It returns the patched
// pod and the multinet Events the pod had before.
func editNetworks(ctx context.Context, c *clients, podName string, edit func(*corev1.Pod) (string, error)) (*corev1.Pod, seen, error) {
	var patched *corev1.Pod
	var before seen
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := c.core.CoreV1().Pods(c.namespace).Get(ctx, podName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("pod %s/%s: %w", c.namespace, podName, err)
		}
		if before == nil {
			events, err := listEvents(ctx, c, pod.Namespace, pod)
			if err != nil {
				return err
			}
			before = seenOf(events[pod.UID])
		}
		value, err := edit(pod)
		if err != nil {
			return err
		}
		patched, err = patchNetworks(ctx, c, pod, networksKey(pod.Annotations), value)
		return err
	})
	return patched, before, err
}

// patchNetworks sets the annotation key to value with a merge patch that carries the pod's
// resourceVersion, so that it fails with a conflict if the pod changed since it was read.
func patchNetworks(ctx context.Context, c *clients, pod *corev1.Pod, key, value string) (*corev1.Pod, error) {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": pod.ResourceVersion,
		"annotations":     map[string]string{key: value},
	}})
	if err != nil {
		return nil, fmt.Errorf("encode patch: %w", err)
	}
	out, err := c.core.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: patch annotation %s: %w", pod.Namespace, pod.Name, key, err)
	}
	return out, nil
}

// errTimeout is returned by wait when the change did not show in time.
var errTimeout = errors.New("timed out")

// eventError is a multinet Warning Event that appeared while waiting.
type eventError struct{ event *corev1.Event }

func (e *eventError) Error() string { return e.event.Reason + ": " + e.event.Message }

// failure is what wait takes for the failure of an edit: a new multinet Event with the
// reason InvalidNetworkSelection (the edit refused as a whole), or with reason and a message
// that names the network or interface edited (another element's retries are not this edit's).
type failure struct {
	reason string
	about  []string
}

func (f failure) is(ev *corev1.Event) bool {
	if ev.Reason == status.ReasonInvalidNetworkSelection {
		return true
	}
	if ev.Reason != f.reason {
		return false
	}
	for _, a := range f.about {
		if a != "" && strings.Contains(ev.Message, a) {
			return true
		}
	}
	return false
}

// wait reads the pod until done says network-status shows the change, a new multinet Event
// that f says is its failure appears (an *eventError), or the timeout passes (errTimeout).
func (o *editOptions) wait(ctx context.Context, c *clients, pod *corev1.Pod, before seen, done func(*PodNetworks) bool, f failure) (*PodNetworks, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		cur, err := c.core.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		if err == nil {
			events, err := listEvents(ctx, c, pod.Namespace, cur)
			if err != nil && ctx.Err() == nil {
				return nil, err
			}
			v := viewPod(cur, events[cur.UID])
			if done(v) {
				return v, nil
			}
			if ev := before.fresh(events[cur.UID], f.is); ev != nil {
				return v, &eventError{ev}
			}
		}
		select {
		case <-ctx.Done():
			return nil, errTimeout
		case <-tick.C:
		}
	}
}

// failed prints why an attach or detach did not complete and returns errUnhealthy.
func (o *editOptions) failed(w io.Writer, pod *corev1.Pod, what string, err error) error {
	var ev *eventError
	switch {
	case errors.As(err, &ev):
		fmt.Fprintf(w, "pod %s/%s: %s failed: %s\n", pod.Namespace, pod.Name, what, ev)
		fmt.Fprintf(w, "The annotation keeps the change and multinetd retries it; run `kubectl multinet diagnose %s` for the cause and the fix.\n", pod.Name)
		return errUnhealthy
	case errors.Is(err, errTimeout):
		fmt.Fprintf(w, "pod %s/%s: %s: network-status did not show the change within %s\n", pod.Namespace, pod.Name, what, o.timeout)
		fmt.Fprintf(w, "Run `kubectl multinet diagnose %s`.\n", pod.Name)
		return errUnhealthy
	}
	return err
}
