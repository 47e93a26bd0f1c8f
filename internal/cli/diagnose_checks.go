package cli

import (
	"context"
	"fmt"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/multinet/multinet/internal/netconf"
	"github.com/multinet/multinet/internal/selection"
)

// Where multinetd runs: deploy/daemonset.yaml's namespace and pod label.
const (
	DaemonNamespace = "multinet"
	DaemonLabel     = "app.kubernetes.io/name=multinet"
)

// checkAnnotation parses the networks annotation with the daemon's parser.
func checkAnnotation(d *diag, pod *corev1.Pod) []nadv1.NetworkSelectionElement {
	key := networksKey(pod.Annotations)
	elems, err := selection.FromAnnotations(pod.Annotations, pod.Namespace)
	if err != nil {
		d.fail(cause{Kind: CauseAnnotationSyntax,
			Line: fmt.Sprintf("pod %s/%s: the networks annotation does not parse: %v", pod.Namespace, pod.Name, err),
			Fix:  fmt.Sprintf("correct %s: `name,ns/name@if` or a JSON list of elements (docs/configuration.md)", key)})
		return nil
	}
	if _, _, _, err := selection.DefaultNetwork(pod.Annotations, pod.Namespace); err != nil {
		d.fail(cause{Kind: CauseAnnotationSyntax,
			Line: fmt.Sprintf("pod %s/%s: the default-network annotation does not parse: %v", pod.Namespace, pod.Name, err),
			Fix:  "correct the default-network annotation: one `name` or `ns/name`"})
	}
	names := make([]string, 0, len(elems))
	for _, e := range elems {
		names = append(names, e.Namespace+"/"+e.Name+ifSuffix(e.InterfaceRequest))
	}
	d.ok("annotation %s: %d network(s) %s", key, len(elems), strings.Join(names, ", "))
	return elems
}

func ifSuffix(ifname string) string {
	if ifname == "" {
		return ""
	}
	return "@" + ifname
}

// checkNADs checks that each network named exists, is readable, is allowed for the pod's
// namespace and has a config the daemon can parse.
func checkNADs(ctx context.Context, c *clients, d *diag, pod *corev1.Pod, elems []nadv1.NetworkSelectionElement) {
	if len(elems) == 0 {
		return
	}
	iso := readIsolation(ctx, c, d)
	done := map[string]bool{}
	for _, e := range elems {
		ref := e.Namespace + "/" + e.Name
		if done[ref] {
			continue
		}
		done[ref] = true
		if why := iso.refuses(pod.Namespace, e.Namespace); why != "" {
			d.fail(cause{Kind: CauseNADNotAllowed, Line: fmt.Sprintf("network %q: %s", ref, why),
				Fix: fmt.Sprintf("use a NAD of namespace %s or of a global namespace, or add %s to globalNamespaces (docs/configuration.md)", pod.Namespace, e.Namespace)})
			continue
		}
		checkNAD(ctx, c, d, ref, e)
	}
}

// checkNAD reads one NAD and parses its config.
func checkNAD(ctx context.Context, c *clients, d *diag, ref string, e nadv1.NetworkSelectionElement) {
	nad, err := c.nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions(e.Namespace).Get(ctx, e.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		d.fail(cause{Kind: CauseNADNotFound,
			Line: fmt.Sprintf("network %q: NetworkAttachmentDefinition %s not found", ref, ref),
			Fix:  fmt.Sprintf("create NetworkAttachmentDefinition %s, or correct the name in the pod's networks annotation", ref)})
		return
	case apierrors.IsForbidden(err):
		d.fail(cause{Kind: CauseNADNotReadable,
			Line: fmt.Sprintf("network %q: you may not read it: %v", ref, err),
			Fix:  "run diagnose as a user who may get network-attachment-definitions in that namespace"})
		return
	case err != nil:
		d.fail(cause{Kind: CauseNADNotReadable, Line: fmt.Sprintf("network %q: %v", ref, err), Fix: "check the API server and your access"})
		return
	}
	if strings.TrimSpace(nad.Spec.Config) == "" {
		d.note("network %s: no spec.config: multinetd reads %s from the node's CNI conf dir (not checked here)", ref, e.Name)
		return
	}
	parsed, err := netconf.Parse([]byte(nad.Spec.Config), nad.Name)
	if err != nil {
		d.fail(cause{Kind: CauseNADConfigInvalid,
			Line: fmt.Sprintf("network %q: spec.config does not parse: %v", ref, err),
			Fix:  fmt.Sprintf("fix spec.config of NetworkAttachmentDefinition %s (a CNI conf or conflist as a JSON string)", ref)})
		return
	}
	n := describeNAD(nad)
	d.ok("network %s: exists, config parses (%s, cniVersion %s, ipam %s %s)", ref, strings.Join(n.Plugins, "+"), parsed.CNIVersion, orDash(n.IPAM), list(n.Subnets))
}

// checkDaemon checks that the node's multinetd pod is Running and Ready. The Ready
// condition is the kubelet's verdict on multinetd's /readyz probe.
func checkDaemon(ctx context.Context, c *clients, d *diag, pod *corev1.Pod) {
	node := pod.Spec.NodeName
	if node == "" {
		d.fail(cause{Kind: CauseNotScheduled, Line: fmt.Sprintf("pod %s/%s is not scheduled to a node yet", pod.Namespace, pod.Name),
			Fix: "wait for the scheduler, or see `kubectl describe pod` for why it cannot place the pod"})
		return
	}
	pods, err := c.core.CoreV1().Pods(DaemonNamespace).List(ctx, metav1.ListOptions{LabelSelector: DaemonLabel,
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()})
	if err != nil {
		d.fail(cause{Kind: CauseUnknownDaemonState, Line: fmt.Sprintf("node %s: cannot list multinetd pods in namespace %s: %v", node, DaemonNamespace, err),
			Fix: "run diagnose as a user who may list pods in namespace " + DaemonNamespace})
		return
	}
	if len(pods.Items) == 0 {
		d.fail(cause{Kind: CauseDaemonMissing, Line: fmt.Sprintf("node %s has no multinetd pod (namespace %s, label %s)", node, DaemonNamespace, DaemonLabel),
			Fix: "check DaemonSet multinet/multinet (kubectl -n multinet describe ds multinet): its nodeSelector, tolerations and events"})
		return
	}
	m := &pods.Items[0]
	ready := podCondition(m, corev1.PodReady)
	if m.Status.Phase != corev1.PodRunning || ready == nil || ready.Status != corev1.ConditionTrue {
		why := string(m.Status.Phase)
		if ready != nil {
			why += fmt.Sprintf(", Ready=%s %s %s", ready.Status, ready.Reason, ready.Message)
		}
		d.fail(cause{Kind: CauseDaemonNotReady, Line: fmt.Sprintf("node %s: multinetd pod %s/%s is not ready (%s)", node, m.Namespace, m.Name, strings.TrimSpace(why)),
			Fix: fmt.Sprintf("kubectl -n %s logs %s; until /readyz answers (caches synced, socket listening, conflist written) new pods on %s wait and edits are not applied", m.Namespace, m.Name, node)})
		return
	}
	d.ok("node %s: multinetd pod %s/%s Running and Ready", node, m.Namespace, m.Name)
}

func podCondition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}
