package attach

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/delegate"
	"github.com/multinet/multinet/internal/routes"
	"github.com/multinet/multinet/internal/status"
	"github.com/multinet/multinet/internal/testbed"
)

// linkDelegates attach for real in the sandbox's netns, as a plugin would, with a veth pair
// (its peer, <ifname>p, stays in the netns):
// eth0 gets 10.0.0.2/24 and fd00::2/64 and the pod's default routes via 10.0.0.1 and fd00::1;
// any other interface gets 10.1.0.2/24, and fd01::2/64 once withIPv6 is set. DEL removes the pair.
type linkDelegates struct {
	mu       sync.Mutex
	withIPv6 bool
}

func (d *linkDelegates) Add(ctx context.Context, inv *delegate.Invocation) (types.Result, error) {
	ns := filepath.Base(inv.Netns)
	peer := inv.IfName + "p"
	cmds := [][]string{{"link", "add", inv.IfName, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "up"}, {"link", "set", inv.IfName, "up"}}
	d.mu.Lock()
	v6 := d.withIPv6
	d.mu.Unlock()
	if inv.IfName == "eth0" {
		cmds = append(cmds, []string{"addr", "add", "10.0.0.2/24", "dev", "eth0"},
			[]string{"addr", "add", "fd00::2/64", "dev", "eth0", "nodad"},
			[]string{"route", "add", "default", "via", "10.0.0.1", "dev", "eth0"},
			[]string{"-6", "route", "add", "default", "via", "fd00::1", "dev", "eth0"})
	} else {
		cmds = append(cmds, []string{"addr", "add", "10.1.0.2/24", "dev", inv.IfName})
		if v6 {
			cmds = append(cmds, []string{"addr", "add", "fd01::2/64", "dev", inv.IfName, "nodad"})
		}
	}
	for _, c := range cmds {
		if out, err := exec.CommandContext(ctx, "ip", append([]string{"-n", ns}, c...)...).CombinedOutput(); err != nil {
			return nil, &types.Error{Code: types.ErrInternal, Msg: "ip " + strings.Join(c, " ") + ": " + string(out)}
		}
	}
	return &types100.Result{CNIVersion: "1.0.0", Interfaces: []*types100.Interface{{Name: inv.IfName, Sandbox: inv.Netns}}}, nil
}

func (d *linkDelegates) Del(ctx context.Context, inv *delegate.Invocation) error {
	out, err := exec.CommandContext(ctx, "ip", "-n", filepath.Base(inv.Netns), "link", "del", inv.IfName).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "Cannot find device") {
		return errors.New(string(out))
	}
	return nil
}

func (d *linkDelegates) Check(context.Context, *delegate.Invocation) error { return nil }
func (d *linkDelegates) GC(context.Context, []byte, []types.GCAttachment) error {
	return nil
}
func (d *linkDelegates) Status(context.Context, []byte) error { return nil }

// kernelRoutes is the daemon's route setter (the routes package) with a hook run before each
// default route move.
type kernelRoutes struct {
	beforeMove func(ifname string, gw net.IP)
}

func (k *kernelRoutes) MoveDefaultRoute(netnsPath, ifname string, gw net.IP) error {
	if k.beforeMove != nil {
		k.beforeMove(ifname, gw)
	}
	return routes.MoveDefaultRoute(netnsPath, ifname, gw)
}

func (k *kernelRoutes) CheckDefaultRoute(netnsPath, ifname string, gw net.IP) error {
	return routes.CheckDefaultRoute(netnsPath, ifname, gw)
}

func (k *kernelRoutes) DefaultRoutes(netnsPath string) ([]routes.DefaultRoute, error) {
	return routes.DefaultRoutes(netnsPath)
}

// defaults are the default routes in the netns at path, read from the kernel, sorted:
// "eth0 via 10.0.0.1".
func defaults(t *testing.T, path string) []string {
	t.Helper()
	rs, err := routes.DefaultRoutes(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.IfName+" via "+r.GW.String())
	}
	slices.Sort(out)
	return out
}

// TestFailedDualStackDefaultRoutePlugPutsBackTheDefaults: a hot plug asks for both default
// routes on net1, whose IPv6 gateway is not reachable there. The IPv4 default moves to net1,
// the IPv6 move fails; by then the record holds the routes it replaces. The rollback puts
// eth0's IPv4 default back (read from the kernel), and a retry does the same; once net1 can
// reach its IPv6 gateway the plug succeeds, and the unplug puts both of eth0's back.
func TestFailedDualStackDefaultRoutePlugPutsBackTheDefaults(t *testing.T) {
	testbed.RequireRoot(t)
	netns := testbed.NewNetNS(t)
	d := &linkDelegates{}
	r := &kernelRoutes{}
	w := newPlugWorld(t, d, netns.Path(), r)
	eth0 := []string{"eth0 via 10.0.0.1", "eth0 via fd00::1"}
	if got := defaults(t, netns.Path()); !slices.Equal(got, eth0) {
		t.Fatalf("default routes after the pod's ADD %v, want %v", got, eth0)
	}
	var atIPv6Move []*checkpoint.Sandbox
	var routesAtIPv6Move [][]string
	r.beforeMove = func(ifname string, gw net.IP) {
		if ifname == "net1" && gw.To4() == nil {
			atIPv6Move = append(atIPv6Move, w.record(t))
			routesAtIPv6Move = append(routesAtIPv6Move, defaults(t, netns.Path()))
		}
	}
	pod := w.pod(`[{"name":"green","default-route":["10.1.0.1","fd01::1"]}]`)
	for try := 1; try <= 2; try++ {
		w.ev.reasons = nil
		if err := w.m.Reconcile(w.ctx, pod); err == nil || errors.Is(err, ErrInvalidEdit) {
			t.Fatalf("try %d: plug = %v, want it failed at the IPv6 default route", try, err)
		}
		if got := defaults(t, netns.Path()); !slices.Equal(got, eth0) {
			t.Errorf("try %d: default routes after the failed plug %v, want eth0's back %v", try, got, eth0)
		}
		if got := ifnamesOf(w.record(t)); !slices.Equal(got, []string{"eth0"}) {
			t.Errorf("try %d: record after the failed plug holds %v, want eth0 only", try, got)
		}
		if !slices.Contains(w.ev.reasons, status.ReasonPlugFailed) {
			t.Errorf("try %d: events %v, want a PlugFailed", try, w.ev.reasons)
		}
	}
	if len(atIPv6Move) != 2 {
		t.Fatalf("the IPv6 move was tried %d times, want 2", len(atIPv6Move))
	}
	for i, sb := range atIPv6Move {
		a := sb.Attachments[sb.Find("net1")]
		if a.State != checkpoint.Adding || a.Meta[replacedDefault] != "eth0=10.0.0.1,eth0=fd00::1" {
			t.Errorf("try %d: record when the IPv6 move ran: net1 %s, replaced %q; want adding, eth0's two defaults",
				i+1, a.State, a.Meta[replacedDefault])
		}
		if want := []string{"eth0 via fd00::1", "net1 via 10.1.0.1"}; !slices.Equal(routesAtIPv6Move[i], want) {
			t.Errorf("try %d: default routes when the IPv6 move ran %v, want %v", i+1, routesAtIPv6Move[i], want)
		}
	}

	d.mu.Lock()
	d.withIPv6 = true
	d.mu.Unlock()
	if err := w.m.Reconcile(w.ctx, pod); err != nil {
		t.Fatalf("plug with the IPv6 gateway reachable: %v", err)
	}
	if got, want := defaults(t, netns.Path()), []string{"net1 via 10.1.0.1", "net1 via fd01::1"}; !slices.Equal(got, want) {
		t.Errorf("default routes after the plug %v, want %v", got, want)
	}
	sb := w.record(t)
	if a := sb.Attachments[sb.Find("net1")]; a.State != checkpoint.Added || a.Meta[replacedDefault] != "eth0=10.0.0.1,eth0=fd00::1" {
		t.Errorf("record after the plug: net1 %s, replaced %q", a.State, a.Meta[replacedDefault])
	}
	if err := w.m.Reconcile(w.ctx, w.pod("")); err != nil {
		t.Fatalf("unplug: %v", err)
	}
	if got := defaults(t, netns.Path()); !slices.Equal(got, eth0) {
		t.Errorf("default routes after the unplug %v, want eth0's back %v", got, eth0)
	}
}

// movesOnly is a route setter that only records the moves asked of it.
type movesOnly struct{ moves []string }

func (r *movesOnly) MoveDefaultRoute(_, ifname string, gw net.IP) error {
	r.moves = append(r.moves, ifname+" via "+gw.String())
	return nil
}
func (r *movesOnly) CheckDefaultRoute(string, string, net.IP) error { return nil }
func (r *movesOnly) DefaultRoutes(string) ([]routes.DefaultRoute, error) {
	return nil, nil
}

// TestPlugRefusedWhenAKeptAttachmentCarriesTheDefaultRoute: net1 (green, recorded before
// attachments had identities) carries the IPv4 default route and is kept; plugging blue with
// an IPv4 default-route too is an invalid edit naming the pod, both networks and the family,
// and nothing runs. An IPv6 default-route for blue takes a family nobody carries: it plugs.
func TestPlugRefusedWhenAKeptAttachmentCarriesTheDefaultRoute(t *testing.T) {
	f := newFake()
	r := &movesOnly{}
	w := newPlugWorld(t, f, t.TempDir(), r)
	sb := w.record(t)
	sb.Attachments = append(sb.Attachments, checkpoint.Attachment{Network: "ns/green", IfName: "net1", ConfList: []byte("{}"),
		State: checkpoint.Added, Result: sb.Attachments[0].Result, Meta: map[string]string{"default-route": "10.1.0.1"}})
	if err := w.m.Store.Update(sb); err != nil {
		t.Fatal(err)
	}
	calls := len(f.calls)
	err := w.m.Reconcile(w.ctx, w.pod(`[{"name":"green"},{"name":"blue","default-route":["10.2.0.1"]}]`))
	if !errors.Is(err, ErrInvalidEdit) {
		t.Fatalf("plug = %v, want an ErrInvalidEdit", err)
	}
	for _, want := range []string{"ns/p", `"ns/green" (net1)`, `"ns/blue" (net2)`, "IPv4"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if len(f.calls) != calls || len(r.moves) != 0 {
		t.Errorf("the refused plug ran %v and moved %v", f.calls[calls:], r.moves)
	}
	if !slices.Equal(w.ev.reasons, []string{status.ReasonInvalidNetworkSelection}) {
		t.Errorf("events %v, want one InvalidNetworkSelection", w.ev.reasons)
	}
	if err := w.m.Reconcile(w.ctx, w.pod(`[{"name":"green"},{"name":"blue","default-route":["fd02::1"]}]`)); err != nil {
		t.Fatalf("plug with an IPv6 default-route: %v", err)
	}
	if got := ifnamesOf(w.record(t)); !slices.Equal(got, []string{"eth0", "net1", "net2"}) || !slices.Equal(r.moves, []string{"net2 via fd02::1"}) {
		t.Errorf("record %v, moves %v; want net2 plugged with the IPv6 default", got, r.moves)
	}
}
