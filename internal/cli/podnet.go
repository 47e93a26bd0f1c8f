package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/multinet/multinet/internal/selection"
)

// Pod states: whether network-status has caught up with the networks annotation.
const (
	StateConverged = "Converged" // every element attached, nothing else
	StatePending   = "Pending"   // multinetd has not acted yet (or the sandbox is not created)
	StateFailed    = "Failed"    // multinet's newest Event on the pod is a Warning
	StateInvalid   = "Invalid"   // the networks annotation does not parse
)

// Interface states.
const (
	IfAttached      = "attached"
	IfPlugPending   = "plug-pending"
	IfPlugFailed    = "plug-failed"
	IfUnplugPending = "unplug-pending"
	IfUnplugFailed  = "unplug-failed"
)

// Interface is one interface of a pod, attached or asked for.
type Interface struct {
	Name    string   `json:"interface"`
	Network string   `json:"network"`
	IPs     []string `json:"ips,omitempty"`
	MAC     string   `json:"mac,omitempty"`
	Gateway []string `json:"gateway,omitempty"`
	Default bool     `json:"default"`
	State   string   `json:"state"`
	// Policies are the MultiNetworkPolicies that select the interface ("namespace/name"),
	// filled for -o wide, json and yaml.
	Policies []string `json:"policies,omitempty"`
	// Device is the DRA device attached as the interface ("driver/pool/device") and Claim the
	// pod's ResourceClaim that holds it, filled for -o wide, json and yaml.
	Device string `json:"device,omitempty"`
	Claim  string `json:"claim,omitempty"`
}

// Warning is multinet's newest Warning Event on a pod.
type Warning struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// PodNetworks is what status reports for one pod.
type PodNetworks struct {
	Namespace  string      `json:"namespace"`
	Name       string      `json:"name"`
	Node       string      `json:"node,omitempty"`
	State      string      `json:"state"`
	Error      string      `json:"error,omitempty"`
	Interfaces []Interface `json:"interfaces"`
	Warning    *Warning    `json:"lastWarning,omitempty"` // multinet's newest Event, if a Warning, on a pod not converged
	// elements are the parsed annotation; match[i] is the network-status index element i
	// is attached as, or -1.
	elements []nadv1.NetworkSelectionElement
	status   []nadv1.NetworkStatus
	match    []int
}

// Healthy is false for a pod whose plug failed or whose annotation is invalid.
func (p *PodNetworks) Healthy() bool { return p.State != StateFailed && p.State != StateInvalid }

// viewPod compares the pod's networks annotation with its network-status; events are
// multinet's Events on the pod, any order.
func viewPod(pod *corev1.Pod, events []corev1.Event) *PodNetworks {
	p := &PodNetworks{Namespace: pod.Namespace, Name: pod.Name, Node: pod.Spec.NodeName}
	p.status = networkStatus(pod)
	newest := newestEvent(events)
	if newest != nil && newest.Type == corev1.EventTypeWarning {
		p.Warning = &Warning{Reason: newest.Reason, Message: newest.Message}
	}
	elems, err := selection.FromAnnotations(pod.Annotations, pod.Namespace)
	if err != nil {
		p.State, p.Error = StateInvalid, err.Error()
		p.Interfaces = interfacesOf(p.status, nil)
		return p
	}
	p.elements = elems
	var extra []int
	p.match, extra = matchStatus(elems, p.status)
	p.Interfaces = interfacesOf(p.status, extra)
	for i, m := range p.match {
		if m < 0 {
			p.Interfaces = append(p.Interfaces, Interface{Name: orDash(elems[i].InterfaceRequest),
				Network: elems[i].Namespace + "/" + elems[i].Name, State: IfPlugPending})
		}
	}
	switch {
	case len(extra) == 0 && !slices.Contains(p.match, -1):
		p.State, p.Warning = StateConverged, nil // a Warning from before is history
	case p.Warning != nil:
		p.State = StateFailed
		markFailed(p.Interfaces, p.Warning.Reason)
	default:
		p.State = StatePending
	}
	return p
}

// networkStatus is the pod's network-status annotation; an unreadable one counts as none.
func networkStatus(pod *corev1.Pod) []nadv1.NetworkStatus {
	var st []nadv1.NetworkStatus
	if v := pod.Annotations[nadv1.NetworkStatusAnnot]; v != "" {
		_ = json.Unmarshal([]byte(v), &st)
	}
	return st
}

// isSecondary tells a NAD's entry ("namespace/name") from the cluster network's.
func isSecondary(s nadv1.NetworkStatus) bool { return strings.Contains(s.Name, "/") }

// matchStatus pairs each element with a network-status entry of its network: one named
// on the element's interface if it asks for one, else any entry of that network not taken.
// It returns, per element, the entry's index or -1, and the secondary entries no element
// has (interfaces left to unplug).
func matchStatus(elems []nadv1.NetworkSelectionElement, st []nadv1.NetworkStatus) (match, extra []int) {
	taken := make([]bool, len(st))
	match = make([]int, len(elems))
	pick := func(i int, named bool) {
		e := elems[i]
		for j, s := range st {
			if !taken[j] && isSecondary(s) && s.Name == e.Namespace+"/"+e.Name && (!named || s.Interface == e.InterfaceRequest) {
				taken[j], match[i] = true, j
				return
			}
		}
	}
	for i := range elems {
		match[i] = -1
		if elems[i].InterfaceRequest != "" {
			pick(i, true)
		}
	}
	for i := range elems {
		if elems[i].InterfaceRequest == "" {
			pick(i, false)
		}
	}
	for j, s := range st {
		if !taken[j] && isSecondary(s) {
			extra = append(extra, j)
		}
	}
	return match, extra
}

// interfacesOf lists the network-status entries; those in extra are waiting to be unplugged.
func interfacesOf(st []nadv1.NetworkStatus, extra []int) []Interface {
	out := make([]Interface, 0, len(st))
	for j, s := range st {
		state := IfAttached
		if slices.Contains(extra, j) {
			state = IfUnplugPending
		}
		out = append(out, Interface{Name: s.Interface, Network: s.Name, IPs: s.IPs, MAC: s.Mac,
			Gateway: s.Gateway, Default: s.Default, State: state})
	}
	return out
}

// markFailed turns the pending interfaces the warning is about into failed ones.
func markFailed(ifs []Interface, reason string) {
	for i := range ifs {
		switch {
		case ifs[i].State == IfUnplugPending && reason == "UnplugFailed":
			ifs[i].State = IfUnplugFailed
		case ifs[i].State == IfPlugPending && reason != "UnplugFailed":
			ifs[i].State = IfPlugFailed
		}
	}
}

// newestEvent is the event last seen; nil for none.
func newestEvent(events []corev1.Event) *corev1.Event {
	var newest *corev1.Event
	for i := range events {
		if newest == nil || !eventTime(&events[i]).Before(eventTime(newest)) {
			newest = &events[i]
		}
	}
	return newest
}

// summary is one line on a pod that has not converged, e.g.
// `t/web: Failed: PlugFailed: pod t/web: network "t/x": bridge ADD: ...`.
func (p *PodNetworks) summary() string {
	switch p.State {
	case StateInvalid:
		return fmt.Sprintf("%s/%s: %s: %s", p.Namespace, p.Name, p.State, p.Error)
	case StateFailed:
		return fmt.Sprintf("%s/%s: %s: %s: %s", p.Namespace, p.Name, p.State, p.Warning.Reason, p.Warning.Message)
	case StatePending:
		return fmt.Sprintf("%s/%s: %s: network-status does not yet match the networks annotation", p.Namespace, p.Name, p.State)
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// hasSecondary reports whether network-status lists a NAD's network.
func hasSecondary(st []nadv1.NetworkStatus) bool {
	return slices.ContainsFunc(st, isSecondary)
}
