// Package daemon wires multinetd: Kubernetes clients and caches, the checkpoint store, the
// delegate runner, the attach manager, the shim socket, metrics, and the node installation
// of the shim and its conflist.
package daemon

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/dra/nics"
)

// Options are multinetd's settings: flags, or the same keys in a YAML/JSON config file.
type Options struct {
	Kubeconfig string `json:"kubeconfig,omitempty"`
	NodeName   string `json:"nodeName,omitempty"`
	CNIConfDir string `json:"cniConfDir,omitempty"`
	CNIBinDir  string `json:"cniBinDir,omitempty"`
	Socket     string `json:"socket,omitempty"`
	StateDir   string `json:"stateDir,omitempty"`
	// KubeletRootDir is the kubelet's --root-dir: the NIC DRA driver registers in its
	// plugins_registry and serves from plugins/<driver>.
	KubeletRootDir string `json:"kubeletRootDir,omitempty"`
	// DRANICs, when set, runs the DRA driver of the node's NICs inside multinetd: the host
	// links it selects are published as devices of a ResourceSlice (docs/dra.md). Absent: off.
	DRANICs *nics.Config `json:"draNICs,omitempty"`
	// NamespaceIsolation (Multus' key) limits a pod to the NADs of its own namespace and of
	// GlobalNamespaces; off, a pod may name any namespace's NAD, as the NPWG spec allows.
	NamespaceIsolation bool          `json:"namespaceIsolation,omitempty"`
	GlobalNamespaces   NamespaceList `json:"globalNamespaces,omitempty"`
	DefaultNetwork     string        `json:"defaultNetwork,omitempty"`
	ShimSource         string        `json:"shimSource,omitempty"`
	MetricsAddress     string        `json:"metricsAddress,omitempty"`
	MaxParallel        int           `json:"maxParallel,omitempty"`
	// DelegateGOMAXPROCS, above 0, is the GOMAXPROCS the delegate plugins run with; 0 leaves
	// their environment as the daemon's.
	DelegateGOMAXPROCS int             `json:"delegateGOMAXPROCS"`
	SweepInterval      metav1.Duration `json:"sweepInterval,omitempty"`
	RequestTimeout     metav1.Duration `json:"requestTimeout,omitempty"`
	WriteConflist      bool            `json:"writeConflist,omitempty"`
	SyncCheckpoints    bool            `json:"syncCheckpoints,omitempty"`
	LogLevel           string          `json:"logLevel,omitempty"`
	Hotplug            bool            `json:"hotplug"`
	// ParallelAttach runs the delegates of a pod's secondary networks at once (ADD and DEL).
	ParallelAttach bool `json:"parallelAttach"`
	// AddedEvents posts one Normal AddedInterface Event per pod ADD listing its interfaces.
	AddedEvents bool `json:"addedEvents"`
	// Profiling serves Go's /debug/pprof/ beside /metrics, for CPU and heap profiles.
	Profiling bool `json:"profiling,omitempty"`
	// ResyncInterval is how often every running pod is reconciled again: hot plug, and its
	// network-status compared with the record and written again when they differ.
	ResyncInterval metav1.Duration `json:"resyncInterval,omitempty"`
	// StatusGiveUpAfter is how long a failed network-status write is retried before it is
	// given up (the next resync writes it again).
	StatusGiveUpAfter metav1.Duration `json:"statusGiveUpAfter,omitempty"`
	// StatusDrainTimeout bounds how long a stopping daemon waits for the network-status writes
	// still pending once its last request is answered.
	StatusDrainTimeout metav1.Duration `json:"statusDrainTimeout,omitempty"`
	// NetworkPolicy enforces MultiNetworkPolicy (when its CRD is served) with nftables in
	// each pod's network namespace.
	NetworkPolicy bool `json:"networkPolicy"`
	// DRA resolves the devices of device-backed networks (NADs annotated
	// k8s.v1.cni.cncf.io/resourceName) from the pod's ResourceClaims, and reports them on the
	// claims' status.
	DRA bool `json:"dra"`
	// PolicyAcceptICMPEcho lets ICMP and ICMPv6 echo (ping) through directions that
	// policies isolate.
	PolicyAcceptICMPEcho bool `json:"policyAcceptICMPEcho,omitempty"`
}

// Defaults are the settings a DaemonSet on a standard node needs.
func Defaults() Options {
	return Options{
		CNIConfDir:         "/etc/cni/net.d",
		CNIBinDir:          "/opt/cni/bin",
		Socket:             cniapi.DefaultSocket,
		StateDir:           "/var/lib/multinet",
		MetricsAddress:     "127.0.0.1:9091",
		MaxParallel:        16,
		DelegateGOMAXPROCS: 1,
		SweepInterval:      metav1.Duration{Duration: time.Minute},
		RequestTimeout:     metav1.Duration{Duration: 3 * time.Minute},
		WriteConflist:      true,
		SyncCheckpoints:    true,
		LogLevel:           "info",
		KubeletRootDir:     "/var/lib/kubelet",
		Hotplug:            true,
		ParallelAttach:     true,
		AddedEvents:        true,
		ResyncInterval:     metav1.Duration{Duration: 5 * time.Minute},
		StatusGiveUpAfter:  metav1.Duration{Duration: 10 * time.Minute},
		StatusDrainTimeout: metav1.Duration{Duration: 10 * time.Second},
		NetworkPolicy:      true,
		DRA:                true,
	}
}

// Parse reads flags (and --config FILE, whose keys the flags given on the command line override).
func Parse(args []string) (Options, error) {
	o := Defaults()
	fs := flag.NewFlagSet("multinetd", flag.ContinueOnError)
	config := fs.String("config", "", "YAML or JSON file with the settings below (keys: nodeName, cniConfDir, ...); command-line flags win")
	globals := fs.String("global-namespaces", "", "with --namespace-isolation: comma-separated namespaces whose NetworkAttachmentDefinitions any pod may use")
	fs.BoolVar(&o.NamespaceIsolation, "namespace-isolation", false, "a pod may use the NetworkAttachmentDefinitions of its own namespace and of --global-namespaces only (recommended hardening; off: any namespace, as the NPWG spec and Multus allow)")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file; empty: in-cluster ServiceAccount credentials")
	fs.StringVar(&o.NodeName, "node-name", "", "this node's name (default: $NODE_NAME, else the hostname)")
	fs.StringVar(&o.CNIConfDir, "cni-conf-dir", o.CNIConfDir, "CNI conf dir: the cluster network's conf is found here and multinet's conflist written here")
	fs.StringVar(&o.CNIBinDir, "cni-bin-dir", o.CNIBinDir, "CNI bin dir: delegate plugins are run from here and the shim installed here")
	fs.StringVar(&o.Socket, "socket", o.Socket, "unix socket the shim talks to")
	fs.StringVar(&o.StateDir, "state-dir", o.StateDir, "where checkpoints and the delegates' result cache are kept")
	fs.StringVar(&o.KubeletRootDir, "kubelet-root-dir", o.KubeletRootDir, "the kubelet's --root-dir: the NIC DRA driver (config key draNICs) registers in its plugins_registry and serves from its plugins/<driver>")
	fs.StringVar(&o.DefaultNetwork, "default-network", "", "cluster default network: a network name in --cni-conf-dir or a conf file path; empty: the first other conf in --cni-conf-dir")
	fs.StringVar(&o.ShimSource, "shim-source", "", "install this shim binary into --cni-bin-dir at start (atomically)")
	fs.StringVar(&o.MetricsAddress, "metrics-address", o.MetricsAddress, "address for /metrics, /healthz and /readyz; empty disables")
	fs.IntVar(&o.MaxParallel, "max-parallel", o.MaxParallel, "delegate plugin chains run at once")
	fs.IntVar(&o.DelegateGOMAXPROCS, "delegate-gomaxprocs", o.DelegateGOMAXPROCS, "run the delegate plugins with GOMAXPROCS set to this: a Go plugin then costs less CPU per call (0: leave their environment as the daemon's, each plugin uses every core)")
	fs.DurationVar(&o.SweepInterval.Duration, "sweep-interval", o.SweepInterval.Duration, "how often sandboxes whose netns is gone are cleaned up")
	fs.DurationVar(&o.RequestTimeout.Duration, "request-timeout", o.RequestTimeout.Duration, "time limit of one CNI request")
	fs.BoolVar(&o.WriteConflist, "write-conflist", o.WriteConflist, "write multinet's conflist into --cni-conf-dir once ready")
	fs.BoolVar(&o.SyncCheckpoints, "sync-checkpoints", o.SyncCheckpoints, "fsync each ADD's intent record before calling delegates, so it survives a power loss too (false: a daemon crash only; saves one disk flush per ADD)")
	fs.StringVar(&o.LogLevel, "log-level", o.LogLevel, "debug, info, warn or error")
	fs.BoolVar(&o.Hotplug, "hotplug", o.Hotplug, "apply edits of a running pod's networks annotation: plug and unplug interfaces (false: interfaces change only when the pod is created)")
	fs.BoolVar(&o.AddedEvents, "added-events", o.AddedEvents, "post one Normal AddedInterface Event per pod ADD listing every interface attached (false: network-status only; one API request less per ADD)")
	fs.BoolVar(&o.ParallelAttach, "parallel-attach", o.ParallelAttach, "run the delegates of a pod's secondary networks at once, after its cluster network (DEL: before it); a NAD annotated multinet.io/attach: serial runs alone (false: one after another)")
	fs.BoolVar(&o.Profiling, "profiling", o.Profiling, "also serve Go's /debug/pprof/ (CPU, heap and goroutine profiles) on --metrics-address; keep that address on loopback")
	fs.DurationVar(&o.ResyncInterval.Duration, "resync-interval", o.ResyncInterval.Duration, "how often every running pod is reconciled again: hot plug, and network-status written again where it differs from the record")
	fs.DurationVar(&o.StatusGiveUpAfter.Duration, "status-give-up-after", o.StatusGiveUpAfter.Duration, "how long a failed network-status write is retried before it is given up (the next resync writes it again)")
	fs.DurationVar(&o.StatusDrainTimeout.Duration, "status-drain-timeout", o.StatusDrainTimeout.Duration, "on SIGTERM, once the last request is answered, how long to wait for the network-status writes still pending (those left are written after the next start)")
	fs.BoolVar(&o.DRA, "dra", o.DRA, "give device-backed networks (NADs annotated k8s.v1.cni.cncf.io/resourceName) the devices the pod's ResourceClaims were allocated, and write their interfaces to the claims' status (false: such NADs are attached as their config says)")
	fs.BoolVar(&o.NetworkPolicy, "network-policy", o.NetworkPolicy, "enforce MultiNetworkPolicy (k8s.cni.cncf.io) on secondary interfaces, with nftables in each pod's network namespace, once its CRD is served (false: not enforced)")
	fs.BoolVar(&o.PolicyAcceptICMPEcho, "policy-accept-icmp-echo", o.PolicyAcceptICMPEcho, "let ICMP and ICMPv6 echo (ping) through directions that MultiNetworkPolicies isolate (false: NetworkPolicy semantics, only what a rule allows)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *config != "" {
		if err := o.mergeFile(*config, fs); err != nil {
			return o, err
		}
	}
	if *globals != "" {
		o.GlobalNamespaces = splitList(*globals)
	}
	return o, o.complete()
}

// mergeFile applies the file's settings, then re-applies the flags set on the command line
// (their values taken before the file overwrote the fields they are bound to).
func (o *Options) mergeFile(path string, fs *flag.FlagSet) error {
	given := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "config" {
			given[f.Name] = f.Value.String()
		}
	})
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, o); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	var errs []error
	for name, value := range given {
		errs = append(errs, fs.Set(name, value))
	}
	return errors.Join(errs...)
}

func (o *Options) complete() error {
	if o.NodeName == "" {
		o.NodeName = os.Getenv("NODE_NAME")
	}
	if o.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--node-name not set and no hostname: %w", err)
		}
		o.NodeName = h
	}
	if o.MaxParallel < 1 {
		return fmt.Errorf("--max-parallel must be at least 1, got %d", o.MaxParallel)
	}
	if o.DelegateGOMAXPROCS < 0 {
		return fmt.Errorf("--delegate-gomaxprocs must be 0 or more, got %d", o.DelegateGOMAXPROCS)
	}
	if o.SweepInterval.Duration <= 0 || o.RequestTimeout.Duration <= 0 {
		return errors.New("--sweep-interval and --request-timeout must be positive")
	}
	if o.ResyncInterval.Duration < time.Second || o.StatusGiveUpAfter.Duration <= 0 || o.StatusDrainTimeout.Duration < 0 {
		return errors.New("--resync-interval must be at least 1s, --status-give-up-after positive and --status-drain-timeout 0 or more")
	}
	return o.completeNICs()
}

// maxSocketPath is the longest unix socket path the kernel binds (sun_path less its NUL).
const maxSocketPath = 107

// completeNICs checks --kubelet-root-dir and the draNICs section, and fills in the
// section's defaults.
func (o *Options) completeNICs() error {
	if !filepath.IsAbs(o.KubeletRootDir) {
		return fmt.Errorf("--kubelet-root-dir must be an absolute path, got %q", o.KubeletRootDir)
	}
	if o.DRANICs == nil {
		return nil
	}
	c := o.DRANICs.WithDefaults()
	if err := c.Validate(); err != nil {
		return fmt.Errorf("draNICs: %w", err)
	}
	o.DRANICs = &c
	registrar, plugin := o.nicDriverDirs()
	for _, sock := range []string{filepath.Join(registrar, c.Driver+"-reg.sock"), filepath.Join(plugin, "dra.sock")} {
		if len(sock) > maxSocketPath {
			return fmt.Errorf("draNICs: the driver's socket %s is longer than %d bytes: shorten --kubelet-root-dir or the driver name", sock, maxSocketPath)
		}
	}
	return nil
}

// nicDriverDirs are the kubelet's plugin registration directory and the NIC driver's own
// plugin directory.
func (o *Options) nicDriverDirs() (registrar, plugin string) {
	return filepath.Join(o.KubeletRootDir, "plugins_registry"), filepath.Join(o.KubeletRootDir, "plugins", o.DRANICs.Driver)
}

// NamespaceList is a list of namespaces: a YAML/JSON list, or a comma-separated string as
// in Multus' config ("globalNamespaces": "default,net-ns").
type NamespaceList []string

// UnmarshalJSON accepts both forms.
func (l *NamespaceList) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*l = splitList(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(data, &list); err != nil {
		return errors.New("globalNamespaces: want a list of namespaces or a comma-separated string")
	}
	*l = list
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
