package attach

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/create"
	corev1 "k8s.io/api/core/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/delegate"
	"github.com/multinet/multinet/internal/plan"
	"github.com/multinet/multinet/internal/podinfo"
	"github.com/multinet/multinet/internal/selection"
	"github.com/multinet/multinet/internal/status"
)

// Add attaches the default network and the pod's selected networks, and returns the default
// network's result in the runtime's CNI version.
func (m *Manager) Add(ctx context.Context, in *cniapi.Request) (json.RawMessage, error) {
	req, err := decode(in)
	if err != nil {
		return nil, err
	}
	defer m.lock(req.ContainerID)()
	delegates, err := m.planAdd(ctx, req)
	if err != nil {
		m.warn(req, status.ReasonInvalidNetworkSelection, err)
		return nil, err
	}
	sb, err := m.attachAll(ctx, req, delegates)
	if err != nil {
		m.warn(req, status.ReasonNetworkSetupFailed, err)
		return nil, err
	}
	m.publish(req, sb)
	if m.AfterAdd != nil && req.pod.Name != "" {
		m.AfterAdd(req.pod.Namespace, req.pod.Name, req.annotation)
	}
	return defaultResult(sb, req.version)
}

// planAdd decides what to attach: the default network, then the pod's selection.
func (m *Manager) planAdd(ctx context.Context, req *request) ([]plan.Delegate, error) {
	if req.pod.Name == "" { // not a Kubernetes pod: the default network only
		def, err := m.ClusterDefault()
		if err != nil {
			return nil, err
		}
		return []plan.Delegate{plan.Default(req.pod, req.ContainerID, def, req.IfName, req.runtime)}, nil
	}
	pod, err := m.Pods.Pod(ctx, req.pod.Namespace, req.pod.Name, req.pod.UID)
	switch {
	case errors.Is(err, podinfo.ErrStaleSandbox):
		return nil, invalidf(types.ErrInvalidEnvironmentVariables, "pod %s: %v", req.pod, err)
	case err != nil:
		return nil, fmt.Errorf("pod %s: %w: %w", req.pod, ErrTryAgain, err)
	}
	if req.pod.UID == "" {
		req.pod.UID = string(pod.UID)
	}
	req.annotation = selection.Raw(pod.Annotations)
	def, err := m.podDefault(ctx, pod)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", req.pod, err)
	}
	nets, err := m.networks(ctx, pod)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", req.pod, err)
	}
	attachments, err := plan.Attachments(req.pod, req.ContainerID, nets, []string{req.IfName})
	if err != nil {
		return nil, invalidf(types.ErrInvalidNetworkConfig, "pod %s: %v", req.pod, err)
	}
	if err := checkDefaultRoutes(attachments); err != nil {
		return nil, invalidf(types.ErrInvalidNetworkConfig, "pod %s: %v", req.pod, err)
	}
	first := plan.Default(req.pod, req.ContainerID, def, req.IfName, req.runtime)
	return append([]plan.Delegate{first}, attachments...), nil
}

// networks resolves the secondary networks the pod's annotation asks for now: the selection
// parsed, each NAD found and its config parsed. ADD and hot plug both read a pod through it.
func (m *Manager) networks(ctx context.Context, pod *corev1.Pod) ([]plan.Network, error) {
	elements, err := selection.FromAnnotations(pod.Annotations, pod.Namespace)
	if err != nil {
		return nil, invalidf(types.ErrInvalidNetworkConfig, "%v", err)
	}
	nets := make([]plan.Network, 0, len(elements))
	for i := range elements {
		n, err := m.resolveNAD(ctx, pod.Namespace, &elements[i])
		if err != nil {
			return nil, err
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// attachAll records intent for every delegate still to run in one durable write, then runs
// them in order. On a failure everything this call added is removed again, newest first,
// and the delegate's own error is returned.
func (m *Manager) attachAll(ctx context.Context, req *request, delegates []plan.Delegate) (*checkpoint.Sandbox, error) {
	sb, err := m.Store.Load(req.ContainerID)
	if errors.Is(err, checkpoint.ErrNotFound) {
		sb = &checkpoint.Sandbox{ContainerID: req.ContainerID, Netns: req.Netns,
			PodNamespace: req.pod.Namespace, PodName: req.pod.Name, PodUID: req.pod.UID}
	} else if err != nil {
		return nil, err
	}
	todo := pending(sb, delegates)
	if len(todo) == 0 {
		return sb, nil // ADD repeated by the runtime: already attached
	}
	for _, d := range todo {
		recordIntent(sb, d)
	}
	if err := m.Store.Save(sb); err != nil {
		return nil, err
	}
	var ran []string
	success := false
	defer func() {
		if !success {
			m.rollback(ctx, sb, todo, ran)
		}
	}()
	for _, d := range todo {
		ran = append(ran, d.IfName)
		if err := m.attachOne(ctx, req, sb, d); err != nil {
			return nil, fmt.Errorf("pod %s: network %q (%s): %w", req.pod, d.Network, d.IfName, err)
		}
	}
	if err := m.applyDefaultRoute(req, sb, delegates); err != nil {
		return nil, fmt.Errorf("pod %s: %w", req.pod, err)
	}
	success = true
	return sb, m.Store.Update(sb)
}

// pending are the delegates not yet attached as planned.
func pending(sb *checkpoint.Sandbox, delegates []plan.Delegate) []*plan.Delegate {
	var out []*plan.Delegate
	for i := range delegates {
		d := &delegates[i]
		j := sb.Find(d.IfName)
		if j < 0 || sb.Attachments[j].State != checkpoint.Added || sb.Attachments[j].Network != d.Network {
			out = append(out, d)
		}
	}
	return out
}

// recordIntent puts the delegate into the record in state Adding.
func recordIntent(sb *checkpoint.Sandbox, d *plan.Delegate) {
	att := checkpoint.Attachment{Network: d.Network, Default: d.Default, IfName: d.IfName,
		ConfList: d.ConfList, Args: d.Args, CapabilityArgs: d.CapabilityArgs, State: checkpoint.Adding}
	if d.Selection != "" {
		att.Selection = json.RawMessage(d.Selection)
	}
	if len(d.DefaultRoute) > 0 {
		gws := make([]string, len(d.DefaultRoute))
		for i, gw := range d.DefaultRoute {
			gws[i] = gw.String()
		}
		att.Meta = map[string]string{"default-route": strings.Join(gws, ",")}
	}
	if i := sb.Find(d.IfName); i >= 0 {
		sb.Attachments[i] = att
		return
	}
	sb.Attachments = append(sb.Attachments, att)
}

// attachOne calls the delegate whose intent is recorded and keeps its result in the record.
func (m *Manager) attachOne(ctx context.Context, req *request, sb *checkpoint.Sandbox, d *plan.Delegate) error {
	a := &sb.Attachments[sb.Find(d.IfName)]
	res, err := m.Delegates.Add(ctx, invocation(sb, a))
	if err != nil {
		var te *types.Error
		if errors.As(err, &te) {
			a.AddError = te
		}
		return err
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	a.Result, a.State = raw, checkpoint.Added
	m.Log.Info("attached", "pod", req.pod.String(), "network", d.Network, "ifname", d.IfName,
		"containerID", req.ContainerID)
	return nil
}

// rollback DELs the delegates this ADD ran, newest first, the failing one and the cluster
// network included, and drops every attachment it recorded intent for but never ran (those
// need no DEL). Nothing is left even if the runtime never calls DEL; what cannot be undone
// now stays in the record for the next DEL, GC or sweep.
func (m *Manager) rollback(ctx context.Context, sb *checkpoint.Sandbox, todo []*plan.Delegate, ran []string) {
	for _, d := range todo[len(ran):] {
		if i := sb.Find(d.IfName); i >= 0 {
			sb.Attachments = slices.Delete(sb.Attachments, i, i+1)
		}
	}
	if err := m.detachAll(ctx, sb, ran); err != nil {
		m.Log.Error("rollback incomplete; the next DEL or GC retries it", "pod", podOf(sb).String(),
			"containerID", sb.ContainerID, "err", err)
	}
}

func invocation(sb *checkpoint.Sandbox, a *checkpoint.Attachment) *delegate.Invocation {
	return &delegate.Invocation{ConfList: a.ConfList, ContainerID: sb.ContainerID, Netns: sb.Netns,
		IfName: a.IfName, Args: a.Args, CapabilityArgs: a.CapabilityArgs}
}

// defaultResult is the default network's result, converted to the runtime's version.
func defaultResult(sb *checkpoint.Sandbox, version string) (json.RawMessage, error) {
	for _, a := range sb.Attachments {
		if !a.Default {
			continue
		}
		res, err := create.CreateFromBytes(a.Result)
		if err != nil {
			return nil, fmt.Errorf("default network %q result: %w", a.Network, err)
		}
		if version == "" {
			version = res.Version()
		}
		conv, err := res.GetAsVersion(version)
		if err != nil {
			return nil, fmt.Errorf("default network %q result as CNI %s: %w", a.Network, version, err)
		}
		return json.Marshal(conv)
	}
	return nil, errors.New("no default network attached")
}

func (m *Manager) warn(req *request, reason string, err error) {
	m.Log.Error("CNI "+req.Command+" failed", "pod", req.pod.String(), "containerID", req.ContainerID,
		"reason", reason, "err", err)
	if req.pod.Name != "" {
		m.Events.Warning(podRef(req.pod), reason, err.Error())
	}
}

func podRef(p plan.Pod) status.PodRef {
	return status.PodRef{Namespace: p.Namespace, Name: p.Name, UID: k8stypes.UID(p.UID)}
}
