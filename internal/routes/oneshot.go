package routes

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DefaultConfigPaths are searched in order when apply runs without --config.
var DefaultConfigPaths = []string{"./multinet-routes.yaml", "/etc/multinet/routes.yaml"}

// Exit codes of the one-shot mode.
const (
	ExitOK    = 0 // routes in place, or nothing to do
	ExitError = 1 // missing or malformed config, missing interface or address, netlink failure
	ExitUsage = 2 // bad command line
)

// applyOptions are the flags of `multinet-routes apply`.
type applyOptions struct {
	config string
	iface  string
	dryRun bool
	wait   time.Duration
}

// Main runs the command-line mode of the multinet-routes binary (it is a CNI plugin when run
// without arguments). It returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "apply" {
		_, _ = fmt.Fprintf(stderr, "usage: multinet-routes apply [--config FILE] [--interface IF] [--dry-run|--noop] [--wait DURATION]\n"+
			"without arguments multinet-routes runs as a CNI plugin\n")
		return ExitUsage
	}
	opts, err := parseApplyFlags(args[1:], stderr)
	if err != nil {
		return ExitUsage
	}
	if err := runApply(ctx, opts, stdout); err != nil {
		_, _ = fmt.Fprintf(stderr, "multinet-routes apply: %v\n", err)
		return ExitError
	}
	return ExitOK
}

func parseApplyFlags(args []string, stderr io.Writer) (applyOptions, error) {
	var o applyOptions
	flags := flag.NewFlagSet("multinet-routes apply", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.StringVar(&o.config, "config", "", "route config (YAML); default: first of "+strings.Join(DefaultConfigPaths, ", "))
	flags.StringVar(&o.iface, "interface", "", "interface to route through; overrides the config's \"interface\"")
	flags.BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing")
	flags.BoolVar(&o.dryRun, "noop", false, "alias of --dry-run")
	flags.DurationVar(&o.wait, "wait", 10*time.Second, "how long to wait for the interface's address")
	if err := flags.Parse(args); err != nil {
		return o, err
	}
	if flags.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "unexpected arguments: %v\n", flags.Args())
		return o, errors.New("unexpected arguments")
	}
	return o, nil
}

// printer writes report lines and keeps the first write error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func runApply(ctx context.Context, o applyOptions, w io.Writer) error {
	out := &printer{w: w}
	err := applyFromConfig(ctx, o, out)
	if err != nil {
		return err
	}
	if out.err != nil {
		return fmt.Errorf("write report: %w", out.err)
	}
	return nil
}

func applyFromConfig(ctx context.Context, o applyOptions, out *printer) error {
	file, data, err := readConfig(o.config)
	if err != nil {
		return err
	}
	ifname, groups, err := ParseSeed(file, data)
	if err != nil {
		return err
	}
	if o.iface != "" {
		ifname = o.iface
	}
	link, err := lookupLink(ifname)
	if err != nil {
		return fmt.Errorf("config %s: %w", file, err)
	}
	addrs, err := waitForAddrs(ctx, link, o.wait)
	if err != nil {
		return err
	}
	out.printf("config %s, interface %s, addresses %v\n", file, ifname, addrs)
	plan, err := PlanSubnetGroups(groups, addrs)
	if err != nil {
		return fmt.Errorf("config %s: %w", file, err)
	}
	if len(plan) == 0 {
		out.printf("no subnet of the config contains an address of %s: nothing to do\n", ifname)
		return nil
	}
	wants := make([]Want, 0, len(plan))
	for _, p := range plan {
		wants = append(wants, Want{Field: fmt.Sprintf("group %q", p.Group), Dst: p.Dst, GW: p.GW})
	}
	if o.dryRun {
		return printPlan(out, link, wants)
	}
	outs, err := EnsureRoutes(link, wants)
	for _, o := range outs {
		out.printf("%s dev %s\n", o, ifname)
	}
	return err
}

// readConfig reads the named file, or the first default path that exists.
func readConfig(path string) (string, []byte, error) {
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return path, nil, fmt.Errorf("config %s: %w", path, err)
		}
		return path, data, nil
	}
	for _, p := range DefaultConfigPaths {
		data, err := os.ReadFile(p)
		if err == nil {
			return p, data, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return p, nil, fmt.Errorf("config %s: %w", p, err)
		}
	}
	return "", nil, fmt.Errorf("no config file: tried %s", strings.Join(DefaultConfigPaths, ", "))
}

// waitForAddrs polls until the interface has a routable address or wait elapses.
func waitForAddrs(ctx context.Context, link netlink.Link, wait time.Duration) ([]netip.Prefix, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		addrs, err := globalAddrs(link)
		if err != nil || len(addrs) > 0 {
			return addrs, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("interface %q has no address after %s", link.Attrs().Name, wait)
		case <-tick.C:
		}
	}
}

func printPlan(out *printer, link netlink.Link, wants []Want) error {
	existing, err := tableRoutes(unix.RT_TABLE_MAIN)
	if err != nil {
		return err
	}
	for _, w := range wants {
		verb := "would add"
		for _, r := range existing {
			if routeDst(r) == w.Dst {
				verb = "present"
			}
		}
		out.printf("%s %s via %s dev %s\n", verb, w.Dst, w.GW, link.Attrs().Name)
	}
	return nil
}
