package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/multinet/multinet/internal/dra/nics"
)

// Restart delays of the NIC driver after a failure: doubled after each one, up to the
// maximum; back to the first after a run that lasted nicDriverStable.
const (
	nicDriverFirstRetry = time.Second
	nicDriverMaxRetry   = 5 * time.Minute
	nicDriverStable     = 10 * time.Minute
)

// startNICDriver runs the DRA driver of the node's NICs (when draNICs is set) until ctx ends
// or the returned stop is called, which waits for it. A failure of the driver is logged and
// the driver restarted after a backoff; it never stops the daemon: pods without claims, and
// the DEL of every pod, need no driver.
func startNICDriver(ctx context.Context, o Options, cfg *rest.Config, log *slog.Logger) (stop func()) {
	if o.DRANICs == nil {
		return func() {}
	}
	registrar, plugin := o.nicDriverDirs()
	opts := nics.Options{Config: *o.DRANICs, NodeName: o.NodeName,
		StateDir: filepath.Join(o.StateDir, "dra-nics"), RegistrarDir: registrar, PluginDataDir: plugin}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go labelled(ctx, "dra-nics", func(ctx context.Context) {
		defer close(done)
		runNICDriver(ctx, cfg, opts, log.With("component", "dra-nics", "driver", opts.Config.Driver))
	})
	return func() { cancel(); <-done }
}

// runNICDriver runs nics.Run again after each failure, until ctx ends.
func runNICDriver(ctx context.Context, cfg *rest.Config, opts nics.Options, log *slog.Logger) {
	delay := nicDriverFirstRetry
	for {
		started := time.Now()
		err := runNICDriverOnce(ctx, cfg, opts)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) >= nicDriverStable {
			delay = nicDriverFirstRetry
		}
		log.Error("NIC DRA driver stopped: its NICs cannot be prepared for new claims until it restarts; CNI requests are served meanwhile",
			"err", err, "restartIn", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, nicDriverMaxRetry)
	}
}

// runNICDriverOnce runs the driver with a client of its own (the ResourceV1 client it needs
// comes with client-go's clientset; the daemon's other clients are narrower).
func runNICDriverOnce(ctx context.Context, cfg *rest.Config, opts nics.Options) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("nic driver: kubernetes client: %w", err)
	}
	opts.Client = client
	return nics.Run(ctx, opts)
}
