// Package attach attaches and detaches the networks of pod sandboxes: it is the daemon's ADD,
// DEL, CHECK, GC and STATUS. The ADD path reads pod info, parses the selection, resolves the
// NADs, plans the delegates, and for each one records intent in the checkpoint, calls it and
// records the result; DEL works from the checkpoint alone.
package attach

import (
	"context"
	"log/slog"
	"net"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/delegate"
	"github.com/multinet/multinet/internal/keylock"
	"github.com/multinet/multinet/internal/routes"
	"github.com/multinet/multinet/internal/status"
)

// PodSource finds pods and NADs (an informer cache in the daemon).
type PodSource interface {
	Pod(ctx context.Context, namespace, name, uid string) (*corev1.Pod, error)
	NAD(ctx context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error)
}

// Delegates runs the real plugins.
type Delegates interface {
	Add(ctx context.Context, inv *delegate.Invocation) (types.Result, error)
	Del(ctx context.Context, inv *delegate.Invocation) error
	Check(ctx context.Context, inv *delegate.Invocation) error
	GC(ctx context.Context, confList []byte, valid []types.GCAttachment) error
	Status(ctx context.Context, confList []byte) error
}

// StatusWriter publishes the network-status annotation without blocking.
type StatusWriter interface {
	Set(pod status.PodRef, value string)
}

// RouteSetter moves a sandbox's default route onto a secondary interface, and checks it is
// still there.
type RouteSetter interface {
	MoveDefaultRoute(netnsPath, ifname string, gw net.IP) error
	CheckDefaultRoute(netnsPath, ifname string, gw net.IP) error
	DefaultRoutes(netnsPath string) ([]routes.DefaultRoute, error)
}

// Policy programs the network policy of a sandbox's secondary interfaces (package policy).
type Policy interface {
	// Enforce puts the rules of every interface of the record in place; an error fails the
	// ADD or plug, which is undone.
	Enforce(ctx context.Context, sb *checkpoint.Sandbox) error
	// Forget drops a sandbox whose networks were all DELed.
	Forget(containerID, netns string)
}

// Config is what the node's operator chose.
type Config struct {
	ConfDir        string // CNI conf dir: where the cluster default network is found
	DefaultNetwork string // name of the default network in ConfDir, or a file path; empty: auto-detect
	OwnConfName    string // multinet's own conflist file name in ConfDir, skipped by auto-detection
	// NamespaceIsolation limits a pod to the NADs of its own namespace and of GlobalNamespaces.
	NamespaceIsolation bool
	GlobalNamespaces   []string // with NamespaceIsolation: namespaces whose NADs any pod may use
	// ParallelAttach runs the delegates of a pod's secondary networks at once, on ADD and DEL
	// (except those whose NAD says AttachAnnotation: serial); off, one after another.
	ParallelAttach bool
	// AddedEvents posts one Normal AddedInterface Event per pod ADD listing its interfaces.
	AddedEvents bool
}

// Deps are the manager's edges.
type Deps struct {
	Pods        PodSource
	Delegates   Delegates
	Store       *checkpoint.Store
	Annotations StatusWriter
	Events      status.EventRecorder
	Routes      RouteSetter
	// Policy, when set, enforces MultiNetworkPolicy on the interfaces ADD and plug attach.
	Policy Policy
	// Claims, when set, resolves the devices of device-backed networks (NADs annotated
	// ResourceNameAnnotation) from the pod's ResourceClaims and reports them on the claims;
	// unset, such NADs are attached as their config says.
	Claims Claims
	Log    *slog.Logger
	// AfterAdd, when set, is told of each pod sandbox ADDed and the networks annotation value
	// that ADD planned from, so that an edit made while it ran is applied right after.
	AfterAdd func(namespace, name, annotation string)
	// IPAMDNS, when set, gives the DNS an IPAM holds for an interface (the DHCP lease
	// manager's), for network-status when the interface plugin dropped its IPAM's.
	IPAMDNS func(containerID, ifname string) types.DNS
	// ObservePhase, when set, is told how long each phase of a CNI verb took (multinetd's own
	// work apart from the delegates: plan, intent, record, publish, result).
	ObservePhase func(command, phase string, took time.Duration)
	// ObserveHotplug, when set, is told how each plug ("plug") and unplug ("unplug") went.
	ObserveHotplug func(operation string, err error)
}

// Manager serves the CNI verbs.
type Manager struct {
	cfg Config
	Deps

	locks keylock.Locks
	// nadConfs caches parsed NAD configs by "namespace/name" (nadConfList); nadConfCount
	// counts the stores since it was last cleared.
	nadConfs     sync.Map
	nadConfCount atomic.Int64
	// invalid holds, by pod UID, the networks annotation last reported as invalid (newlyInvalid).
	invalid sync.Map
}

// New wires a manager.
func New(cfg Config, deps Deps) *Manager {
	return &Manager{cfg: cfg, Deps: deps}
}

// phase times one phase of a CNI verb for ObservePhase; call the returned func at its end, on
// the same goroutine. Meanwhile the goroutine (and those it starts) carries the profiler
// label phase=name on top of ctx's labels, so a CPU profile of the daemon splits by phase.
func (m *Manager) phase(ctx context.Context, command, name string) func() {
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels(PhaseLabel, name)))
	start := time.Now()
	return func() {
		pprof.SetGoroutineLabels(ctx)
		if m.ObservePhase != nil {
			m.ObservePhase(command, name, time.Since(start))
		}
	}
}

// PhaseLabel is the profiler label that names the phase of a CNI verb a CPU sample is from.
const PhaseLabel = "phase"

// lock serialises all work on one sandbox; the returned func unlocks.
func (m *Manager) lock(containerID string) func() { return m.locks.Lock(containerID) }
