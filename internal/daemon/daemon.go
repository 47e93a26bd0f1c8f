package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containernetworking/cni/libcni"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned/typed/k8s.cni.cncf.io/v1"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/multinet/multinet/internal/attach"
	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/coreapi"
	"github.com/multinet/multinet/internal/delegate"
	"github.com/multinet/multinet/internal/dhcp"
	"github.com/multinet/multinet/internal/dhcp/ipam"
	"github.com/multinet/multinet/internal/hotplug"
	"github.com/multinet/multinet/internal/install"
	mipam "github.com/multinet/multinet/internal/ipam"
	"github.com/multinet/multinet/internal/ipam/blocks"
	"github.com/multinet/multinet/internal/kubeconfig"
	"github.com/multinet/multinet/internal/metrics"
	"github.com/multinet/multinet/internal/podinfo"
	"github.com/multinet/multinet/internal/policy"
	"github.com/multinet/multinet/internal/routes"
	"github.com/multinet/multinet/internal/server"
	"github.com/multinet/multinet/internal/status"
)

// Run serves until ctx ends. It returns an error only for what stops the daemon from starting.
func Run(ctx context.Context, o Options, log *slog.Logger) error {
	m := metrics.New()
	cfg, err := kubeconfig.RESTConfig(o.Kubeconfig, "multinetd")
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.Wrap(m.CountingTransport)
	client, err := coreapi.New(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	// NetworkAttachmentDefinitions are a CRD: JSON only. Their typed client alone: the
	// clientset around it would link a discovery client and every built-in group's types.
	nads, err := nadclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("NetworkAttachmentDefinition client: %w", err)
	}
	store, err := openCheckpoints(o)
	if err != nil {
		return err
	}
	// Leases are renewed from here on, whether or not the API server answers.
	leaseCtx, stopLeases := context.WithCancel(ctx)
	var leases *dhcp.Manager
	labelled(leaseCtx, "dhcp", func(ctx context.Context) { leases, err = startLeases(ctx, o, m, log) })
	if err != nil {
		stopLeases()
		return err
	}
	defer func() { stopLeases(); leases.Wait() }()
	if err := installShim(o); err != nil {
		return err
	}
	startMetrics(ctx, o, m, log)
	defer startNICDriver(ctx, o, cfg, log)()
	pods := podinfo.New(client, nads, o.NodeName)
	events, stopEvents := startEvents(ctx, client, o.NodeName)
	defer stopEvents()
	patcher := status.NewPatcher(client, log, status.WithEvents(events), status.WithGiveUpAfter(o.StatusGiveUpAfter.Duration))
	leases.SetWarner(podWarner(events))
	defer leases.SetWarner(nil)
	mgr := attach.New(attach.Config{ConfDir: o.CNIConfDir, DefaultNetwork: o.DefaultNetwork,
		OwnConfName: install.ConfName, NamespaceIsolation: o.NamespaceIsolation, GlobalNamespaces: o.GlobalNamespaces,
		ParallelAttach: o.ParallelAttach, AddedEvents: o.AddedEvents}, attach.Deps{
		Pods:      pods,
		Delegates: delegate.New([]string{o.CNIBinDir}, filepath.Join(o.StateDir, "cache"), o.MaxParallel, o.DelegateGOMAXPROCS),
		Store:     store, Annotations: patcher, Events: events, Routes: routeSetter{}, Log: log,
		IPAMDNS: leases.DNS, ObservePhase: m.ObservePhase,
	})
	if err := startAttachParts(ctx, o, cfg, client, pods, mgr, m, log); err != nil {
		return err
	}
	runHotplug, err := hotplugFor(o, pods, mgr, m, log)
	if err != nil {
		return err
	}
	var addrs *mipam.Manager
	labelled(ctx, "ipam", func(ctx context.Context) { addrs, err = startAddresses(ctx, o, cfg, client, pods, m, log) })
	if err != nil {
		return err
	}
	// The socket is served at once: DEL, CHECK, GC, STATUS and DHCP need no API server.
	// ADD, hot plug and readiness wait for the caches.
	labelled(ctx, "informers", pods.Start)
	synced, reconciled := make(chan struct{}), make(chan struct{})
	go labelled(ctx, "hotplug", func(ctx context.Context) {
		defer close(reconciled)
		if pods.WaitForSync(ctx) {
			log.Info("pod and NetworkAttachmentDefinition caches synced: serving ADD")
			close(synced)
			runHotplug(ctx)
		}
	})
	defer runStatus(ctx, patcher, o.StatusDrainTimeout.Duration, reconciled, log)()
	labelled(ctx, "serve", func(ctx context.Context) {
		trim := &idleTrim{}
		err = serve(ctx, o, trim.count(handler(o, gatedAdd{mgr, pods, synced}, leases, addrs, m, log)), mgr, synced, trim, m, log)
	})
	return err
}

// runStatus runs the network-status patcher beyond ctx, and returns what stops it: called
// once the socket's last request is answered (an ADD in flight at SIGTERM still publishes),
// it waits for the reconciles to end (done), then for the writes still pending, up to drain
// in all; what is left then is written again after the next start (its reconcile compares
// every pod's network-status with the record).
func runStatus(ctx context.Context, patcher *status.Patcher, drain time.Duration, done <-chan struct{}, log *slog.Logger) func() {
	patchCtx, stopPatching := context.WithCancel(context.WithoutCancel(ctx))
	stopped := make(chan struct{})
	go labelled(patchCtx, "network-status", func(ctx context.Context) {
		defer close(stopped)
		patcher.Run(ctx)
	})
	return func() {
		deadline, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
		defer cancel()
		if ctx.Err() != nil { // stopping: the reconciles end with ctx and may publish as they do
			select {
			case <-done:
			case <-deadline.Done():
			}
		}
		if left := patcher.Drain(deadline); len(left) > 0 {
			pods := make([]string, len(left))
			for i, p := range left {
				pods[i] = p.Namespace + "/" + p.Name
			}
			log.Warn("stopping with network-status not written; it is written after the next start", "pods", pods, "drainTimeout", drain)
		}
		stopPatching()
		<-stopped
	}
}

// gatedAdd is the manager with ADD held back until the pod and NAD caches are synced. While
// the first list is under way (the daemon just started: a rollout, a restart), an ADD waits
// for it up to syncWait, so that a runtime whose ADD arrives then does not fail a sandbox
// for a fraction of a second; otherwise (the API server failing, or the wait over) ADD
// answers "try again later" (CNI code 11) and says why.
type gatedAdd struct {
	*attach.Manager
	pods   *podinfo.Source
	synced <-chan struct{} // closed once the caches have synced
}

// syncWait is how long an ADD waits for the caches' first list to end.
const syncWait = 5 * time.Second

func (g gatedAdd) Add(ctx context.Context, req *cniapi.Request) (json.RawMessage, error) {
	if g.pods.Synced() != nil && g.pods.ListErr() == nil {
		t := time.NewTimer(syncWait)
		select {
		case <-g.synced:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	if err := g.pods.Synced(); err != nil {
		return nil, fmt.Errorf("%w: %w", err, attach.ErrTryAgain)
	}
	return g.Manager.Add(ctx, req)
}

// hotplugFor builds the hot plug controller on the pod cache (before the cache starts, so its
// periodic resync is in force) and returns what runs it. With hot plug off, the controller
// still runs, to republish network-status only.
func hotplugFor(o Options, pods *podinfo.Source, mgr *attach.Manager, m *metrics.Metrics, log *slog.Logger) (func(context.Context), error) {
	set := hotplug.DefaultSettings()
	set.Resync = o.ResyncInterval.Duration
	var rec hotplug.Reconciler = republishOnly{mgr}
	var observe hotplug.Observer
	if o.Hotplug {
		rec, observe = mgr, m.ObserveReconcile
	}
	ctl, err := hotplug.New(pods.PodInformer, rec, set, observe, log)
	if err != nil {
		return nil, fmt.Errorf("hot plug: %w", err)
	}
	if o.Hotplug {
		mgr.AfterAdd, mgr.ObserveHotplug = ctl.AfterAdd, m.ObserveHotplug
	}
	return ctl.Run, nil
}

// startEvents starts the recorder of pod Events; call stop after the last one.
func startEvents(ctx context.Context, client *coreapi.Client, node string) (events status.EventRecorder, stop func()) {
	labelled(ctx, "events", func(context.Context) { events, stop = status.NewEventRecorder(client.EventSink(), node) })
	return events, stop
}

// startAttachParts gives mgr its optional parts: DRA (device-backed networks) and the
// MultiNetworkPolicy controller.
func startAttachParts(ctx context.Context, o Options, cfg *rest.Config, client *coreapi.Client, pods *podinfo.Source,
	mgr *attach.Manager, m *metrics.Metrics, log *slog.Logger) error {
	if err := startDRA(ctx, o, cfg, mgr, log); err != nil {
		return err
	}
	return startPolicy(ctx, o, cfg, client, pods, mgr, m, log)
}

// startPolicy builds the MultiNetworkPolicy controller (unless --network-policy is off),
// hooks it into mgr's ADD, plug and DEL, and runs it once the pod cache synced.
func startPolicy(ctx context.Context, o Options, cfg *rest.Config, client *coreapi.Client, pods *podinfo.Source,
	mgr *attach.Manager, m *metrics.Metrics, log *slog.Logger) error {
	if !o.NetworkPolicy {
		return nil
	}
	src, err := policySources(o, cfg, client, pods)
	if err != nil {
		return err
	}
	pol := policy.New(policy.Config{AcceptICMPEcho: o.PolicyAcceptICMPEcho}, policy.Deps{
		Pods: pods, Sandboxes: mgr.Store, Firewall: policy.Kernel{}, Events: mgr.Events, Log: log,
		Observe: policy.Observer{Sync: m.ObservePolicySync, Policies: m.Policies, Programmed: m.PolicyProgrammed},
	})
	mgr.Policy = pol
	go labelled(ctx, "policy", func(ctx context.Context) {
		if pods.WaitForSync(ctx) {
			pol.Run(ctx, src)
		}
	})
	return nil
}

// policySources are the API clients the policy controller watches through.
func policySources(o Options, cfg *rest.Config, client *coreapi.Client, pods *podinfo.Source) (policy.Sources, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return policy.Sources{}, fmt.Errorf("MultiNetworkPolicy client: %w", err)
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return policy.Sources{}, fmt.Errorf("namespace client: %w", err)
	}
	return policy.Sources{Dynamic: dyn, Metadata: meta, Pods: client, Node: o.NodeName, LocalPods: pods.PodInformer}, nil
}

// republishOnly reconciles the network-status of pods, not their interfaces (hot plug off).
type republishOnly struct{ mgr *attach.Manager }

func (r republishOnly) Reconcile(_ context.Context, pod *corev1.Pod) error {
	r.mgr.Republish(pod)
	return nil
}

// startLeases reloads the DHCP leases and tells every plugin multinetd runs (and their IPAM
// plugins, which inherit the environment) where the lease manager listens.
func startLeases(ctx context.Context, o Options, m *metrics.Metrics, log *slog.Logger) (*dhcp.Manager, error) {
	leases, err := dhcp.New(filepath.Join(o.StateDir, "dhcp"), log)
	if err != nil {
		return nil, err
	}
	if err := os.Setenv(ipam.SocketEnv, o.Socket); err != nil {
		return nil, fmt.Errorf("set %s: %w", ipam.SocketEnv, err)
	}
	leases.SetObserver(m)
	m.ReadyWhen("DHCP lease manager", leases.Ready)
	leases.Start(ctx)
	return leases, nil
}

// openCheckpoints opens the checkpoint store, fsynced unless told not to.
func openCheckpoints(o Options) (*checkpoint.Store, error) {
	store, err := checkpoint.Open(filepath.Join(o.StateDir, "checkpoints"))
	if err != nil || o.SyncCheckpoints {
		return store, err
	}
	return store.WithoutSync(), nil
}

// installShim installs the shim and multinet's plugins into the CNI bin dir, when asked to.
func installShim(o Options) error {
	if o.ShimSource == "" {
		return nil
	}
	return install.Binaries(o.ShimSource, o.CNIBinDir)
}

// startAddresses reloads multinet-ipam's records and runs its write-back and reconciler; the
// IPBlock informer starts with the first multinet-ipam request, the Node metadata informer
// with the reconciler's first look at the blocks.
func startAddresses(ctx context.Context, o Options, cfg *rest.Config, client *coreapi.Client, pods *podinfo.Source,
	m *metrics.Metrics, log *slog.Logger) (*mipam.Manager, error) {
	api, err := blocks.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("IPBlock client: %w", err)
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("node metadata client: %w", err)
	}
	addrs, err := mipam.New(o.NodeName, filepath.Join(o.StateDir, "ipam"), mipam.Settings{NoSync: !o.SyncCheckpoints},
		mipam.Deps{API: api, Pods: pods, Nodes: mipam.NewKubeNodes(ctx, meta, client), Obs: m, Log: log.With("component", "ipam")})
	if err != nil {
		return nil, err
	}
	addrs.Start(ctx)
	return addrs, nil
}

// podWarner makes the lease manager's warnings pod Events.
func podWarner(events status.EventRecorder) dhcp.Warner {
	return func(namespace, name, uid, reason, message string) {
		events.Warning(status.PodRef{Namespace: namespace, Name: name, UID: k8stypes.UID(uid)}, reason, message)
	}
}

// handler serves the shim on cniapi.Path, the DHCP lease manager on ipam.Path and the
// cluster-wide address manager on ipam.ClusterPath. All speak the same protocol, so each is a
// server (decoding, limits, CNI errors); the mux routes.
func handler(o Options, mgr server.Handler, leases *dhcp.Manager, addrs *mipam.Manager, m *metrics.Metrics, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(cniapi.Path, server.New(mgr, attach.ToCNI, m.ObserveCNI, o.RequestTimeout.Duration, log))
	mux.Handle(ipam.Path, server.New(leases, dhcp.ToCNI, nil, o.RequestTimeout.Duration, log))
	mux.Handle(ipam.ClusterPath, server.New(addrs, mipam.ToCNI, nil, o.RequestTimeout.Duration, log))
	return mux
}

// serve listens on the shim socket at once, declares readiness once the caches are synced and
// multinet's conflist is in place (retrying until the cluster network shows up), sweeps
// periodically and stops gracefully with ctx.
func serve(ctx context.Context, o Options, h http.Handler, mgr *attach.Manager, synced <-chan struct{}, trim *idleTrim,
	m *metrics.Metrics, log *slog.Logger) error {
	l, err := server.Listen(o.Socket)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("serving DEL, CHECK, GC, STATUS and DHCP; ADD waits for the pod and NetworkAttachmentDefinition caches",
		"socket", o.Socket)
	cachesSynced, ready := false, false
	retry := time.NewTicker(5 * time.Second)
	defer retry.Stop()
	sweep := time.NewTicker(o.SweepInterval.Duration)
	defer sweep.Stop()
	idle := time.NewTicker(idleTrimAfter)
	defer idle.Stop()
	for {
		select {
		case <-idle.C:
			trim.tick()
		case <-synced:
			synced, cachesSynced = nil, true
			if ready = becomeReady(o, mgr, m, log, true); ready {
				releaseStartupPages(log)
				debug.FreeOSMemory()
			}
		case <-retry.C:
			if cachesSynced && !ready {
				if ready = becomeReady(o, mgr, m, log, false); ready {
					releaseStartupPages(log)
					debug.FreeOSMemory()
				}
			}
		case <-sweep.C:
			if err := mgr.Sweep(ctx); err != nil {
				log.Warn("sweep", "err", err)
			}
		case err := <-errc:
			return fmt.Errorf("socket server: %w", err)
		case <-ctx.Done():
			m.SetReady(false)
			shut, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return srv.Shutdown(shut)
		}
	}
}

// idleTrimAfter is how long the socket must have been quiet before idleTrim acts.
const idleTrimAfter = 10 * time.Second

// idleTrim gives the heap a burst of requests grew back to the kernel once the burst is over:
// the Go runtime keeps freed heap for a while in case it is needed again, which on a node
// that creates pods in bursts is RSS held for nothing between them. One forced collection
// (debug.FreeOSMemory) per quiet period that follows requests; none while requests come in.
type idleTrim struct {
	served  atomic.Int64 // socket requests so far
	seen    int64        // served at the last tick
	trimmed int64        // served at the last trim
}

// count counts the requests h serves.
func (t *idleTrim) count(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.served.Add(1)
		h.ServeHTTP(w, r)
	})
}

// tick runs every idleTrimAfter: it trims when no request came since the last tick and some
// came since the last trim.
func (t *idleTrim) tick() {
	n := t.served.Load()
	if n == t.seen && n != t.trimmed {
		debug.FreeOSMemory()
		t.trimmed = n
	}
	t.seen = n
}

// becomeReady writes multinet's conflist (unless told not to) and flips readiness; it logs
// a failure the first time only, and reports whether the daemon is ready.
func becomeReady(o Options, mgr *attach.Manager, m *metrics.Metrics, log *slog.Logger, first bool) bool {
	if o.WriteConflist {
		if err := writeConflist(o, mgr); err != nil {
			if first {
				log.Error("multinet conflist not written yet; retrying every 5s (pods keep the cluster network alone until then)",
					"confDir", o.CNIConfDir, "err", err)
			}
			return false
		}
	}
	m.SetReady(true)
	log.Info("multinetd ready", "node", o.NodeName, "socket", o.Socket, "stateDir", o.StateDir)
	return true
}

// releaseStartupPages gives back the pages of multinetd's code and read-only data that only
// its start-up touched: package initialisation, the first lists and the checks before ready
// touch code that later requests do not run (the kernel maps 64 KiB around each page
// touched). They are clean pages of the binary: the kernel reads back those the daemon runs
// again. Kernels without MADV_PAGEOUT (before 5.4) keep them.
func releaseStartupPages(log *slog.Logger) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(maps), "\n") {
		// address perms offset dev inode path
		f := strings.Fields(line)
		if len(f) != 6 || f[5] != exe || (f[1] != "r-xp" && f[1] != "r--p") {
			continue
		}
		from, to, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(from, 16, 64)
		end, err2 := strconv.ParseUint(to, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); errno != 0 {
			log.Debug("start-up pages not released", "mapping", f[0], "err", errno)
			return
		}
	}
}

// writeConflist installs multinet's conflist in the CNI version of the cluster default
// network, so every runtime that runs the default network runs this.
func writeConflist(o Options, mgr *attach.Manager) error {
	def, err := mgr.ClusterDefault()
	if err != nil {
		return err
	}
	list, err := libcni.ConfListFromBytes(def.ConfList)
	if err != nil {
		return fmt.Errorf("default network %q: %w", def.Key, err)
	}
	_, err = install.Conflist(o.CNIConfDir, list.CNIVersion, o.Socket)
	return err
}

// PartLabel is the profiler label that names the part of multinetd a CPU sample is from
// (informers, events, network-status, hotplug, ipam, dhcp, metrics, dra-nics: the NIC DRA
// driver, serve: the socket's listener, readiness and the sweep). The socket's requests carry server.RequestLabel instead.
const PartLabel = "part"

// labelled runs f with the profiler label part=name; goroutines f starts keep it.
func labelled(ctx context.Context, name string, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels(PartLabel, name), f)
}

// withProfiling adds Go's /debug/pprof/ handlers to h when on.
func withProfiling(h http.Handler, on bool) http.Handler {
	if !on {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	return mux
}

// startMetrics serves /metrics, /healthz and /readyz (and pprof when asked) on the metrics
// address, unless it is empty, until ctx ends.
func startMetrics(ctx context.Context, o Options, m *metrics.Metrics, log *slog.Logger) {
	if o.MetricsAddress != "" {
		go labelled(ctx, "metrics", func(ctx context.Context) {
			serveMetrics(ctx, o.MetricsAddress, withProfiling(m.Handler(), o.Profiling), log)
		})
	}
}

func serveMetrics(ctx context.Context, addr string, h http.Handler, log *slog.Logger) {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics listener", "address", addr, "err", err)
	}
}

// routeSetter adapts the routes package to the manager.
type routeSetter struct{}

func (routeSetter) MoveDefaultRoute(netnsPath, ifname string, gw net.IP) error {
	return routes.MoveDefaultRoute(netnsPath, ifname, gw)
}

func (routeSetter) CheckDefaultRoute(netnsPath, ifname string, gw net.IP) error {
	return routes.CheckDefaultRoute(netnsPath, ifname, gw)
}

func (routeSetter) DefaultRoutes(netnsPath string) ([]routes.DefaultRoute, error) {
	return routes.DefaultRoutes(netnsPath)
}
