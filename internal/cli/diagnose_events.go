package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/multinet/multinet/internal/status"
)

// The ConfigMap deploy/ mounts as multinetd's config file.
const (
	ConfigMapName = "multinet-config"
	ConfigMapKey  = "multinetd.yaml"
)

// isolation is multinetd's namespace isolation setting (docs/configuration.md).
type isolation struct {
	on      bool
	globals []string
}

// refuses says why a pod of podNS may not use a NAD of nadNS, or "" when it may.
func (iso isolation) refuses(podNS, nadNS string) string {
	if !iso.on || nadNS == podNS || slices.Contains(iso.globals, nadNS) {
		return ""
	}
	return fmt.Sprintf("namespace %q is neither the pod's namespace nor a global namespace (%s); namespaceIsolation is on",
		nadNS, strings.Join(iso.globals, ", "))
}

// readIsolation reads namespaceIsolation and globalNamespaces from multinetd's ConfigMap;
// unreadable, it assumes the default (off) and says so.
func readIsolation(ctx context.Context, c *clients, d *diag) isolation {
	cm, err := c.core.CoreV1().ConfigMaps(DaemonNamespace).Get(ctx, ConfigMapName, metav1.GetOptions{})
	if err != nil {
		d.note("namespace isolation: configmap %s/%s: %v; assuming the default, off", DaemonNamespace, ConfigMapName, err)
		return isolation{}
	}
	var conf struct {
		NamespaceIsolation bool            `json:"namespaceIsolation"`
		GlobalNamespaces   json.RawMessage `json:"globalNamespaces"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data[ConfigMapKey]), &conf); err != nil {
		d.note("namespace isolation: configmap %s/%s key %s: %v; assuming the default, off", DaemonNamespace, ConfigMapName, ConfigMapKey, err)
		return isolation{}
	}
	iso := isolation{on: conf.NamespaceIsolation}
	var asString string
	if json.Unmarshal(conf.GlobalNamespaces, &iso.globals) != nil && json.Unmarshal(conf.GlobalNamespaces, &asString) == nil {
		for _, ns := range strings.Split(asString, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				iso.globals = append(iso.globals, ns)
			}
		}
	}
	d.note("namespace isolation: %t (configmap %s/%s; a flag on multinetd's command line would win)", iso.on, DaemonNamespace, ConfigMapName)
	return iso
}

// maxEventsShown bounds the Events diagnose prints as evidence.
const maxEventsShown = 5

// checkEvents compares network-status with the annotation and reads multinet's Events; a
// pod that has not converged gets its cause from the newest Warning. It returns a summary
// of a healthy pod.
func checkEvents(ctx context.Context, c *clients, d *diag, pod *corev1.Pod) string {
	events, err := listEvents(ctx, c, pod.Namespace, pod)
	if err != nil {
		d.note("events: %v", err)
	}
	evs := events[pod.UID]
	slices.SortFunc(evs, func(a, b corev1.Event) int { return eventTime(&b).Compare(eventTime(&a)) })
	for i := range evs[:min(len(evs), maxEventsShown)] {
		ev := &evs[i]
		d.note("event %s %s (%s ago): %s", ev.Type, ev.Reason, time.Since(eventTime(ev)).Round(time.Second), ev.Message)
	}
	v := viewPod(pod, evs)
	attached := make([]string, 0, len(v.Interfaces))
	for _, i := range v.Interfaces {
		if i.State == IfAttached {
			attached = append(attached, fmt.Sprintf("%s %s", i.Name, i.Network))
		}
	}
	switch v.State {
	case StateConverged:
		d.ok("network-status matches the annotation: %s", strings.Join(attached, ", "))
		return fmt.Sprintf("network-status matches the networks annotation (%s)", strings.Join(attached, ", "))
	case StateFailed:
		d.fail(classify(pod, v.Warning))
	case StatePending:
		d.fail(pending(pod, v))
	}
	return ""
}

// exhausted are the texts an IPAM plugin gives when it has no address left, each with what
// to do for that plugin; the first one a message contains decides.
var exhausted = []struct{ text, fix string }{
	// multinet-ipam: `no IP addresses available in range R (pool "P"): every block is claimed ...`
	{"every block is claimed", "widen the NAD's ipam range, or free addresses: `kubectl get ipblocks` shows multinet-ipam's blocks " +
		"(node, used, free) and `kubectl get ipb NAME -o yaml` the pod of each address (a StatefulSet pod's stays held for " +
		"sticky_hold after DEL); the ADD is retried until an address is free (docs/ipam.md)"},
	// whereabouts: `Could not allocate IP in range: ip: A / - B / range: R / excludeRanges: [...]`
	{"Could not allocate IP in range", "widen the NAD's ipam range (or shorten its exclude list), or free addresses: " +
		"`kubectl get ippools.whereabouts.cni.cncf.io -A -o yaml` lists whereabouts' addresses and the pod of each; one whose pod is gone is a leak"},
	// host-local: `no IP addresses available in range set: A-B`
	{"no IP addresses available in range set", "widen the NAD's ipam ranges, or free addresses: host-local keeps a file per " +
		"address in its dataDir (/var/lib/cni/networks/NETWORK) on the pod's node, and one that no running pod holds is a leak"},
	{"no IP addresses available", "widen the NAD's ipam range, or free addresses where its IPAM plugin keeps them " +
		"(host-local: files in its dataDir; multinet-ipam: `kubectl get ipblocks`; whereabouts: its IPPools)"},
}

// poolExhausted returns the fix for a delegate's message that says its IP pool is exhausted.
func poolExhausted(message string) (fix string, ok bool) {
	for _, e := range exhausted {
		if strings.Contains(message, e.text) {
			return e.fix, true
		}
	}
	return "", false
}

// classify turns multinet's newest Warning into a cause: the delegate's text decides for
// the faults diagnose knows (an IP pool exhausted, no DHCP server), the reason otherwise.
func classify(pod *corev1.Pod, w *Warning) cause {
	msg := w.Reason + ": " + w.Message
	if fix, ok := poolExhausted(w.Message); ok {
		return cause{Kind: CauseIPPoolExhausted, Line: "the network's IP pool is exhausted: " + msg, Fix: fix}
	}
	if strings.Contains(w.Message, "DHCPDISCOVER") && strings.Contains(w.Message, "no offer") {
		return cause{Kind: CauseDHCPNoServer, Line: "no DHCP server answered: " + msg,
			Fix: "start a DHCP server reachable on the network's master, bridge or VLAN (docs/dhcp.md), or give the NAD a static or host-local ipam"}
	}
	c := cause{Kind: CauseMultinetWarning, Line: msg, Fix: "read the Warning's text above; `kubectl describe pod " + pod.Name + "` has all Events"}
	switch w.Reason {
	case status.ReasonPlugFailed:
		c.Kind, c.Fix = CausePlugFailed, "a delegate failed to plug the network into the running pod (rolled back, retried with backoff): fix the NAD or the plugin the message names, or `kubectl multinet detach` the network"
	case status.ReasonUnplugFailed:
		c.Kind, c.Fix = CauseUnplugFailed, "a delegate's DEL failed (retried with backoff): fix what the plugin's message names; the interface stays until DEL succeeds"
	case status.ReasonInvalidNetworkSelection:
		c.Kind, c.Fix = CauseInvalidSelection, "multinetd refused the selection: correct the annotation or the NAD the message names"
	case status.ReasonNetworkSetupFailed:
		c.Kind, c.Fix = CauseSetupFailed, "the sandbox's CNI ADD failed and was rolled back; the runtime retries it: fix the NAD or plugin the message names"
	case status.ReasonDeviceNotResolved:
		c.Kind, c.Fix = CauseDeviceNotResolved, "a device-backed network needs a device of its resourceName from one of the pod's ResourceClaims: "+
			"`kubectl get resourceclaim -n "+pod.Namespace+" NAME -o yaml` shows whether the claim the message names is allocated and reserved for the pod, "+
			"and its devices need the attribute k8s.cni.cncf.io/resourceName equal to the NAD's annotation (docs/dra.md); the runtime retries while a claim is pending"
	case status.ReasonHotplugRefused:
		c.Kind, c.Fix = CauseHotplugRefused, "a device-backed network's device comes only from claims made with the pod: "+
			"remove it from the annotation, or recreate the pod with the network and a ResourceClaim for its device (docs/dra.md)"
	}
	return c
}

// pending is the cause of a pod whose network-status lags its annotation with no Warning.
func pending(pod *corev1.Pod, v *PodNetworks) cause {
	if len(v.status) == 0 {
		return cause{Kind: CauseSandboxPending,
			Line: fmt.Sprintf("pod %s/%s has no network-status: its sandbox's CNI ADD has not completed (or not run)", pod.Namespace, pod.Name),
			Fix:  "wait for the runtime to create the sandbox; `kubectl describe pod` shows the kubelet's view"}
	}
	var waiting []string
	for _, i := range v.Interfaces {
		if i.State != IfAttached {
			waiting = append(waiting, fmt.Sprintf("%s %s %s", i.State, i.Name, i.Network))
		}
	}
	return cause{Kind: CauseHotplugPending,
		Line: fmt.Sprintf("pod %s/%s: network-status does not match the annotation yet: %s", pod.Namespace, pod.Name, strings.Join(waiting, ", ")),
		Fix:  "multinetd applies edits within seconds; if it stays, check that hotplug is on (docs/hotplug.md) and multinetd's log on the node"}
}
