package attach

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

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
	done := m.phase(ctx, "ADD", "plan")
	delegates, err := m.planAdd(ctx, req)
	done()
	if err != nil {
		reason := status.ReasonInvalidNetworkSelection
		if errors.Is(err, ErrDevice) {
			reason = status.ReasonDeviceNotResolved
		}
		m.warn(req, reason, err)
		return nil, err
	}
	sb, err := m.attachAll(ctx, req, delegates)
	if err != nil {
		reason := status.ReasonNetworkSetupFailed
		if errors.Is(err, ErrPolicy) {
			reason = status.ReasonNetworkPolicyFailed
		}
		m.warn(req, reason, err)
		return nil, err
	}
	done = m.phase(ctx, "ADD", "publish")
	m.publish(req, sb)
	m.announce(req, sb)
	m.reportClaims(ctx, sb, nil)
	if m.AfterAdd != nil && req.pod.Name != "" {
		m.AfterAdd(req.pod.Namespace, req.pod.Name, req.annotation)
	}
	done()
	defer m.phase(ctx, "ADD", "result")()
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
	if err := m.resolveDevices(ctx, pod, attachments); err != nil { // it names the pod
		return nil, err
	}
	first := plan.Default(req.pod, req.ContainerID, def, req.IfName, req.runtime)
	return append([]plan.Delegate{first}, attachments...), nil
}

// networks resolves the secondary networks the pod's annotation asks for now: the selection
// parsed, each NAD found and its config parsed. ADD and hot plug both read a pod through it.
func (m *Manager) networks(ctx context.Context, pod *corev1.Pod) ([]plan.Network, error) {
	elements, err := selection.FromAnnotations(pod.Annotations, pod.Namespace)
	if err != nil { // wraps a *selection.Error: hot plug waits for the next edit (ErrInvalidEdit)
		return nil, invalidf(types.ErrInvalidNetworkConfig, "%w", err)
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

// AttachAnnotation on a NetworkAttachmentDefinition's metadata says how its network is
// attached beside a pod's others: "parallel" (the default) or "serial", for plugins that act
// on the whole netns and must not run beside another network's.
const AttachAnnotation = "multinet.io/attach"

// serialNAD tells whether a NAD (key "namespace/name", its annotations) opted out of
// parallel attach.
func serialNAD(key string, annotations map[string]string) (bool, error) {
	switch v := annotations[AttachAnnotation]; v {
	case "", "parallel":
		return false, nil
	case "serial":
		return true, nil
	default:
		return false, invalidf(types.ErrInvalidNetworkConfig, "network %q: annotation %s: %q is neither \"parallel\" nor \"serial\"",
			key, AttachAnnotation, v)
	}
}

// attachAll records intent for every delegate still to run in one durable write, then runs
// them stage by stage (stages): the default network alone, then the secondary networks at
// once, then each one that must run alone. The record keeps the planned order whatever order
// the delegates finish in. On a failure the stage under way is let finish, then everything
// this call ran is removed again (rollback) and the delegates' own errors are returned.
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
	ifnames := make([]string, len(todo))
	for i, d := range todo {
		recordIntent(sb, d)
		ifnames[i] = d.IfName
	}
	done := m.phase(ctx, req.Command, "intent")
	err = m.Store.Save(sb)
	done()
	if err != nil {
		return nil, err
	}
	ran := map[string]bool{}
	success := false
	defer func() {
		if !success {
			m.rollback(ctx, sb, ifnames, ran)
		}
	}()
	// The rules of the interfaces to come are in before they exist: not even a plugged one,
	// in a running pod, is ever usable unfiltered.
	if err := m.enforce(ctx, req, sb); err != nil {
		return nil, err
	}
	var mu sync.Mutex // guards sb while a stage's delegates run
	done = m.phase(ctx, req.Command, "delegates")
	defer func() { done() }() // on every return: the failing stage counts too
	for _, stage := range m.stages(sb, ifnames) {
		for _, ifname := range stage {
			ran[ifname] = true
		}
		errs := each(stage, func(ifname string) error { return m.attachOne(ctx, req, sb, &mu, ifname) })
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("pod %s: %w", req.pod, err)
		}
	}
	if err := m.applyDefaultRoute(sb, ifnames); err != nil {
		return nil, fmt.Errorf("pod %s: %w", req.pod, err)
	}
	done()
	done = func() {}
	if err := m.enforce(ctx, req, sb); err != nil {
		return nil, err
	}
	success = true
	defer m.phase(ctx, req.Command, "record")()
	return sb, m.Store.Update(sb)
}

// ErrPolicy marks an ADD or plug failed because the network policy of its interfaces could
// not be programmed.
var ErrPolicy = errors.New("network policy not programmed")

// enforce programs the network policy of the sandbox's interfaces (when multinetd enforces
// it) before the ADD or plug returns: an interface never runs unfiltered.
func (m *Manager) enforce(ctx context.Context, req *request, sb *checkpoint.Sandbox) error {
	if m.Policy == nil {
		return nil
	}
	defer m.phase(ctx, req.Command, "policy")()
	err := m.Policy.Enforce(ctx, sb)
	var retry interface{ TryAgain() bool }
	switch {
	case err == nil:
		return nil
	case errors.As(err, &retry) && retry.TryAgain():
		return fmt.Errorf("pod %s: %w: %w: %w", req.pod, ErrPolicy, ErrTryAgain, err)
	default:
		return fmt.Errorf("pod %s: %w: %w", req.pod, ErrPolicy, err)
	}
}

// attachMode is the key of an attachment's Meta that says "serial" for a network that runs
// alone (plan.Delegate.Serial), so that DEL, from the record alone, runs it alone too.
const attachMode = "attach"

// stages groups the attachments on ifnames (in planned order) into the steps that run one
// after another, the attachments of a step at once: the default network alone, then every
// secondary network, then each network whose NAD opted out (attachMode) alone, in planned
// order. With parallel attach off, every attachment is a step of its own, in planned order.
// ADD runs the steps in order; DEL in reverse, so the default network goes last.
func (m *Manager) stages(sb *checkpoint.Sandbox, ifnames []string) [][]string {
	var first, together, alone []string
	for _, ifname := range ifnames {
		i := sb.Find(ifname)
		if i < 0 {
			continue
		}
		a := &sb.Attachments[i]
		switch {
		case a.Default:
			first = append(first, ifname)
		case m.cfg.ParallelAttach && a.Meta[attachMode] != "serial":
			together = append(together, ifname)
		default:
			alone = append(alone, ifname)
		}
	}
	var out [][]string
	for _, ifname := range first {
		out = append(out, []string{ifname})
	}
	if len(together) > 0 {
		out = append(out, together)
	}
	for _, ifname := range alone {
		out = append(out, []string{ifname})
	}
	return out
}

// each runs f on every item at once (a single one on the caller's goroutine), waits for all,
// and returns their errors in the items' order.
func each(items []string, f func(string) error) []error {
	errs := make([]error, len(items))
	if len(items) == 1 {
		errs[0] = f(items[0])
		return errs
	}
	var wg sync.WaitGroup
	for i, item := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(item)
		}()
	}
	wg.Wait()
	return errs
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
	if len(d.DefaultRoute) > 0 || d.Serial || len(d.Meta) > 0 {
		att.Meta = maps.Clone(d.Meta)
		if att.Meta == nil {
			att.Meta = map[string]string{}
		}
	}
	if len(d.DefaultRoute) > 0 {
		gws := make([]string, len(d.DefaultRoute))
		for i, gw := range d.DefaultRoute {
			gws[i] = gw.String()
		}
		att.Meta["default-route"] = strings.Join(gws, ",")
	}
	if d.Serial {
		att.Meta[attachMode] = "serial"
	}
	if i := sb.Find(d.IfName); i >= 0 {
		sb.Attachments[i] = att
		return
	}
	sb.Attachments = append(sb.Attachments, att)
}

// attachOne calls the delegate whose intent is recorded on ifname and keeps its result in the
// record. The delegates of a stage share sb: mu guards it, and is not held during the call.
func (m *Manager) attachOne(ctx context.Context, req *request, sb *checkpoint.Sandbox, mu *sync.Mutex, ifname string) error {
	mu.Lock()
	a := sb.Attachments[sb.Find(ifname)]
	mu.Unlock()
	res, err := m.Delegates.Add(ctx, invocation(sb, &a))
	var raw []byte
	if err == nil {
		if raw, err = json.Marshal(res); err != nil {
			err = fmt.Errorf("encode result: %w", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	rec := &sb.Attachments[sb.Find(ifname)]
	if err != nil {
		var te *types.Error
		if errors.As(err, &te) {
			rec.AddError = te
		}
		return fmt.Errorf("network %q (%s): %w", a.Network, ifname, err)
	}
	rec.Result = raw
	if rec.Meta["default-route"] == "" { // else Added once its default route moved (applyDefaultRoute)
		rec.State = checkpoint.Added
	}
	m.Log.Info("attached", "pod", req.pod.String(), "network", a.Network, "ifname", ifname,
		"containerID", req.ContainerID)
	return nil
}

// rollbackTimeout bounds a rollback. The request's context may have ended already (its
// deadline may be why the ADD failed), so a rollback runs on a context of its own: with the
// request's, every DEL would fail at once.
const rollbackTimeout = time.Minute

// rollback DELs the delegates this ADD ran (ran, among ifnames), the default network last,
// the failing ones and the cluster network included, and drops every attachment it recorded
// intent for but never ran (those need no DEL). Nothing is left even if the runtime never
// calls DEL; what cannot be undone now stays in the record for the next DEL, GC or sweep.
// It runs to its end even when ctx has ended, for at most rollbackTimeout. The default routes
// an attachment's default-route replaced are put back first, on the interfaces that stay, so
// the pod has them again even if a DEL fails.
func (m *Manager) rollback(ctx context.Context, sb *checkpoint.Sandbox, ifnames []string, ran map[string]bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	var undo []string
	for _, ifname := range ifnames {
		if ran[ifname] {
			undo = append(undo, ifname)
		} else if i := sb.Find(ifname); i >= 0 {
			sb.Attachments = slices.Delete(sb.Attachments, i, i+1)
		}
	}
	var errs []error
	for _, ifname := range undo {
		a := &sb.Attachments[sb.Find(ifname)]
		if err := m.restoreDefaults(sb, a, undo); err != nil {
			errs = append(errs, fmt.Errorf("network %q (%s): put back the default routes it replaced: %w", a.Network, ifname, err))
		}
	}
	if err := errors.Join(append(errs, m.detachAll(ctx, sb, undo))...); err != nil {
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
