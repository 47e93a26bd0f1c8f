package routes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
)

// Paths set up by TestMain for the integration tests: the reference CNI plugins and the
// multinet-routes binary built from this tree.
var (
	cniBinDir    string
	pluginDir    string
	pluginBinary string
	harnessErr   error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "multinet-routes-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	harnessErr = buildHarness(dir)
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func buildHarness(dir string) error {
	pluginDir = dir
	pluginBinary = filepath.Join(dir, "multinet-routes")
	build := exec.Command("go", "build", "-o", pluginBinary, "../../cmd/multinet-routes")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build multinet-routes: %w: %s", err, out)
	}
	tools := exec.Command("../../hack/tools.sh", "cni")
	tools.Stderr = os.Stderr
	out, err := tools.Output()
	if err != nil {
		return fmt.Errorf("hack/tools.sh cni: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	cniBinDir = lines[len(lines)-1]
	return nil
}

// needRoot fails tests that need namespaces when not root (they run as root in CI; a skip
// would pass silently) and on a broken harness.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces); run it as root, as CI does")
	}
	if harnessErr != nil {
		t.Fatal(harnessErr)
	}
}

// netnsName gives a short namespace name unique to the test and process.
func netnsName(t testing.TB, role string) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%d", t.Name(), os.Getpid(), time.Now().UnixNano())))
	return "mnr-" + role + "-" + hex.EncodeToString(h[:4])
}

// newNetns creates a named netns (so `ip netns exec` works), removed at cleanup.
func newNetns(t testing.TB, role string) string {
	t.Helper()
	name := netnsName(t, role)
	sh(t, "", "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	sh(t, name, "ip", "link", "set", "lo", "up")
	sh(t, name, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return name
}

func nsPath(name string) string { return "/run/netns/" + name }

// sh runs a command, inside netns when it is not empty, and fails the test on error.
func sh(t testing.TB, netns string, args ...string) string {
	t.Helper()
	out, err := shErr(netns, args...)
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

func shErr(netns string, args ...string) (string, error) {
	if netns != "" {
		args = append([]string{"ip", "netns", "exec", netns}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

// veth joins two namespaces; each end gets its addresses and comes up.
func veth(t testing.TB, ns1, if1 string, addrs1 []string, ns2, if2 string, addrs2 []string) {
	t.Helper()
	sh(t, "", "ip", "link", "add", if1, "netns", ns1, "type", "veth", "peer", "name", if2, "netns", ns2)
	for _, end := range []struct {
		ns, ifname string
		addrs      []string
	}{{ns1, if1, addrs1}, {ns2, if2, addrs2}} {
		for _, a := range end.addrs {
			sh(t, end.ns, "ip", "addr", "add", a, "dev", end.ifname)
		}
		sh(t, end.ns, "ip", "link", "set", end.ifname, "up")
	}
}

// ping sends one echo request from netns to addr and reports whether a reply came.
func ping(netns, addr string) error {
	out, err := shErr(netns, "ping", "-c1", "-W1", addr)
	if err != nil {
		return fmt.Errorf("ping %s from %s: %w: %s", addr, netns, err, out)
	}
	return nil
}

// cniRunner runs conflists with libcni from inside the node netns, as a runtime on that node
// would, so bridges the plugins create stay in the test's namespaces.
type cniRunner struct {
	cni  *libcni.CNIConfig
	node string
	dir  string
}

func newCNIRunner(t testing.TB, node string) *cniRunner {
	dir := t.TempDir()
	return &cniRunner{
		cni:  libcni.NewCNIConfigWithCacheDir([]string{pluginDir, cniBinDir}, filepath.Join(dir, "cache"), nil),
		node: node,
		dir:  dir,
	}
}

func (c *cniRunner) do(f func() error) error {
	return ns.WithNetNSPath(nsPath(c.node), func(ns.NetNS) error { return f() })
}

func (c *cniRunner) list(t testing.TB, conflist string) *libcni.NetworkConfigList {
	t.Helper()
	l, err := libcni.ConfListFromBytes([]byte(conflist))
	if err != nil {
		t.Fatalf("conflist: %v\n%s", err, conflist)
	}
	return l
}

func (c *cniRunner) add(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (*types100.Result, error) {
	var res types.Result
	err := c.do(func() (err error) {
		res, err = c.cni.AddNetworkList(context.Background(), list, rt)
		return err
	})
	if err != nil {
		return nil, err
	}
	return types100.NewResultFromResult(res)
}

func (c *cniRunner) del(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return c.do(func() error { return c.cni.DelNetworkList(context.Background(), list, rt) })
}

func (c *cniRunner) check(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return c.do(func() error { return c.cni.CheckNetworkList(context.Background(), list, rt) })
}

// conflist renders a CNI 1.0.0 conflist of the given plugin objects.
func conflist(name string, plugins ...map[string]any) string {
	b, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": name, "plugins": plugins})
	return string(b)
}

// bridgePlugin attaches to bridge br (in the node netns) with host-local on the ranges.
func bridgePlugin(br, dataDir string, ranges [][]map[string]any, routes ...map[string]any) map[string]any {
	ipam := map[string]any{"type": "host-local", "dataDir": dataDir, "ranges": ranges}
	if len(routes) > 0 {
		ipam["routes"] = routes
	}
	return map[string]any{"type": "bridge", "bridge": br, "isGateway": false, "ipMasq": false, "ipam": ipam}
}

func hostRange(subnet, start, gw string) []map[string]any {
	return []map[string]any{{"subnet": subnet, "rangeStart": start, "gateway": gw}}
}

// routesOf lists `ip route` lines of a family in netns for a device (all devices when "").
func routesOf(t testing.TB, netns, family, dev string, extra ...string) string {
	args := []string{"ip", family, "route", "show"}
	args = append(args, extra...)
	if dev != "" {
		args = append(args, "dev", dev)
	}
	return sh(t, netns, args...)
}

// invokePlugin runs the multinet-routes binary once, as a runtime would in a chain, with conf
// (a plugin object) and prevResult injected. It returns the printed result for ADD.
func invokePlugin(t testing.TB, command, netns, ifname string, conf map[string]any, prev *types100.Result) (*types100.Result, error) {
	t.Helper()
	c := map[string]any{"cniVersion": "1.0.0", "name": "direct"}
	for k, v := range conf {
		c[k] = v
	}
	if prev != nil {
		c["prevResult"] = prev
	}
	stdin, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	args := &invoke.Args{Command: command, ContainerID: "direct", NetNS: netns, IfName: ifname, Path: pluginDir}
	if command != "ADD" {
		return nil, invoke.ExecPluginWithoutResult(context.Background(), pluginBinary, stdin, args, nil)
	}
	res, err := invoke.ExecPluginWithResult(context.Background(), pluginBinary, stdin, args, nil)
	if err != nil {
		return nil, err
	}
	return types100.NewResultFromResult(res)
}
