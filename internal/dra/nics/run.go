package nics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/kubernetes"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/klog/v2"
)

// Defaults of Options.
const (
	DefaultStateDir = "/var/lib/multinet/dra-nics"
	DefaultSysfs    = "/sys"
	DefaultRescan   = 30 * time.Second
)

// Options tell Run where the node's kubelet and state are.
type Options struct {
	Config   Config
	NodeName string               // the pool name and the ResourceSlices' owner
	Client   kubernetes.Interface // reads claims, writes ResourceSlices
	// StateDir holds the prepared claims (DefaultStateDir when empty).
	StateDir string
	// RegistrarDir is the kubelet's plugin registration directory, where the driver puts
	// <driver>-reg.sock (kubeletplugin.KubeletRegistryDir when empty).
	RegistrarDir string
	// PluginDataDir holds the driver's DRA socket dra.sock
	// (kubeletplugin.KubeletPluginsDir/<driver> when empty).
	PluginDataDir string
	Sysfs         string        // DefaultSysfs when empty
	Rescan        time.Duration // rescan period besides link events; DefaultRescan when zero
	Host          Host          // NetlinkHost{} when nil
}

func (o Options) withDefaults() (Options, error) {
	o.Config = o.Config.WithDefaults()
	if err := o.Config.Validate(); err != nil {
		return o, err
	}
	if o.NodeName == "" || o.Client == nil {
		return o, errors.New("nic driver: a node name and a client are needed")
	}
	o.StateDir = or(o.StateDir, DefaultStateDir)
	o.RegistrarDir = or(o.RegistrarDir, kubeletplugin.KubeletRegistryDir)
	o.PluginDataDir = or(o.PluginDataDir, filepath.Join(kubeletplugin.KubeletPluginsDir, o.Config.Driver))
	o.Sysfs = or(o.Sysfs, DefaultSysfs)
	if o.Rescan <= 0 {
		o.Rescan = DefaultRescan
	}
	if o.Host == nil {
		o.Host = NetlinkHost{}
	}
	return o, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Run serves the kubelet as the DRA driver of the node's NICs until ctx ends: it scans the
// links, starts the kubelet plugin (registration and DRA sockets), publishes the node's
// ResourceSlice and republishes after each link event and every Rescan. It returns nil when
// ctx ends, or the error that stopped it.
func Run(ctx context.Context, opts Options) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	state, err := LoadState(opts.StateDir)
	if err != nil {
		return err
	}
	for _, dir := range []string{opts.RegistrarDir, opts.PluginDataDir} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("nic driver: %w", err)
		}
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	d := NewDriver(opts.Config.Driver, opts.NodeName, state)
	d.fatal = stop
	rescan := make(chan struct{}, 1)
	d.changed = func() { poke(rescan) }
	if err := scan(ctx, d, opts); err != nil {
		return err
	}
	helper, err := startPlugin(ctx, d, opts)
	if err != nil {
		return err
	}
	defer helper.Stop()
	events, err := opts.Host.Watch(ctx)
	if err != nil {
		return err
	}
	slog.InfoContext(ctx, "nic driver started", "driver", opts.Config.Driver, "node", opts.NodeName, "registrar", opts.RegistrarDir, "plugin", opts.PluginDataDir)
	return loop(ctx, d, helper, opts, events, rescan)
}

// startPlugin starts the kubelet plugin helper; the helper logs through slog.
func startPlugin(ctx context.Context, d *Driver, opts Options) (*kubeletplugin.Helper, error) {
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(slog.Default().Handler()))
	helper, err := kubeletplugin.Start(ctx, d,
		kubeletplugin.DriverName(opts.Config.Driver),
		kubeletplugin.KubeClient(opts.Client),
		kubeletplugin.NodeName(opts.NodeName),
		kubeletplugin.RegistrarDirectoryPath(opts.RegistrarDir),
		kubeletplugin.PluginDataDirectoryPath(opts.PluginDataDir),
		kubeletplugin.HealthService(false),
	)
	if err != nil {
		return nil, fmt.Errorf("nic driver: start kubelet plugin: %w", err)
	}
	if err := helper.PublishResources(ctx, d.Resources()); err != nil {
		helper.Stop()
		return nil, fmt.Errorf("nic driver: publish: %w", err)
	}
	return helper, nil
}

// loop rescans after link events, unprepares and every opts.Rescan, and republishes what
// changed, until ctx ends.
func loop(ctx context.Context, d *Driver, helper *kubeletplugin.Helper, opts Options, events <-chan struct{}, rescan chan struct{}) error {
	ticker := time.NewTicker(opts.Rescan)
	defer ticker.Stop()
	published := d.Resources()
	for {
		select {
		case <-ctx.Done():
			if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
				return fmt.Errorf("nic driver: %w", err)
			}
			return nil
		case _, ok := <-events:
			if !ok {
				slog.WarnContext(ctx, "nic driver: link events ended; rescanning periodically only")
				events = nil
				continue
			}
		case <-rescan:
		case <-ticker.C:
		}
		if err := scan(ctx, d, opts); err != nil {
			slog.WarnContext(ctx, "nic driver: rescan", "err", err)
			continue
		}
		next := d.Resources()
		if equality.Semantic.DeepEqual(next, published) {
			continue
		}
		if err := helper.PublishResources(ctx, next); err != nil {
			return fmt.Errorf("nic driver: publish: %w", err)
		}
		published = next
		slog.InfoContext(ctx, "nic driver: devices republished", "driver", opts.Config.Driver, "devices", deviceCount(next))
	}
}

// scan lists the host's links and gives the devices it selects to d.
func scan(ctx context.Context, d *Driver, opts Options) error {
	links, err := opts.Host.Links(ctx)
	if err != nil {
		return fmt.Errorf("nic driver: %w", err)
	}
	nics := Discover(opts.Config, links, opts.Sysfs)
	devs := make([]resourceapi.Device, 0, len(nics))
	for _, n := range nics {
		devs = append(devs, n.Device(opts.Config.ResourceName))
	}
	d.SetHost(devs)
	return nil
}

func deviceCount(r resourceslice.DriverResources) int {
	n := 0
	for _, p := range r.Pools {
		for _, s := range p.Slices {
			n += len(s.Devices)
		}
	}
	return n
}

// poke sends on a channel of one pending value without blocking.
func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
