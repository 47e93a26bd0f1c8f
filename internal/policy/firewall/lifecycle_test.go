package firewall

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/spec"
	"github.com/multinet/multinet/internal/testbed"
)

// tableExists reads the kernel's inet tables in netnsPath.
func tableExists(t *testing.T, netnsPath string) bool {
	t.Helper()
	var found bool
	err := withConn(netnsPath, func(c *nftables.Conn) error {
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
		found = slices.ContainsFunc(tables, func(tb *nftables.Table) bool { return tb.Name == TableName })
		return err
	})
	if err != nil {
		t.Fatalf("listing tables: %v", err)
	}
	return found
}

func program(t *testing.T, netnsPath string, rs ...compile.Ruleset) {
	t.Helper()
	if err := Program(netnsPath, rs, Options{}); err != nil {
		t.Fatalf("Program: %v", err)
	}
}

func TestProgramTwiceReplaces(t *testing.T) {
	tp := newTopology(t)
	program(t, tp.srv.Path(), compile.Ruleset{IfName: "net1", Ingress: allow(allowFrom("10.1.0.2/32"))})
	check(t, in("tcp", cliA, 7001, true)(tp), in("tcp", cliB, 7001, false)(tp))

	program(t, tp.srv.Path(), compile.Ruleset{IfName: "net1", Ingress: allow(allowFrom("10.1.0.3/32"))})
	check(t, in("tcp", cliA, 7001, false)(tp), in("tcp", cliB, 7001, true)(tp), in("udp", cliA, 7001, false)(tp))

	program(t, tp.srv.Path(), compile.Ruleset{IfName: "net1", Egress: denyAll})
	check(t, in("tcp", cliA, 7001, true)(tp), out("tcp", cliA, 7001, false)(tp))
	got, err := Read(tp.srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Direction != "egress" {
		t.Errorf("Read after replacing ingress by egress: %+v, want only net1 egress", got)
	}
}

func TestRemoveLeavesNoTable(t *testing.T) {
	tp := newTopology(t)
	program(t, tp.srv.Path(), compile.Ruleset{IfName: "net1", Ingress: denyAll, Egress: denyAll})
	check(t, in("tcp", cliA, 7001, false)(tp))
	for range 2 { // the second finds no table
		if err := Remove(tp.srv.Path()); err != nil {
			t.Fatalf("Remove: %v", err)
		}
	}
	if tableExists(t, tp.srv.Path()) {
		t.Errorf("table %s still there after Remove", TableName)
	}
	check(t, in("tcp", cliA, 7001, true)(tp), out("udp", cliB, 7001, true)(tp))
}

func TestRulesetsWithoutIsolationGetNoTable(t *testing.T) {
	testbed.RequireRoot(t)
	netns := testbed.NewNetNS(t)
	program(t, netns.Path(), compile.Ruleset{IfName: "net1", Ingress: denyAll})
	program(t, netns.Path(), compile.Ruleset{IfName: "net1"}, compile.Ruleset{IfName: "net2"})
	if tableExists(t, netns.Path()) {
		t.Errorf("table %s there with no isolated direction", TableName)
	}
	program(t, netns.Path()) // and none before: not an error
}

func TestReadCountsDrops(t *testing.T) {
	tp := newTopology(t)
	program(t, tp.srv.Path(),
		compile.Ruleset{IfName: "net1", Ingress: denyAll, Egress: allow(compile.Allow{Any: true})},
		compile.Ruleset{IfName: "net2"},
		compile.Ruleset{IfName: "net3", Ingress: allow(
			allowFrom("10.9.0.0/16", "fd09::/64"),
			compile.Allow{Any: true, Ports: []compile.PortRange{ports(spec.TCP, 80, 0), ports(spec.SCTP, 0, 0)}},
		)},
	)
	const sent = 3
	for range sent {
		check(t, in("udp", cliB, 7001, false)(tp))
	}
	got, err := Read(tp.srv.Path())
	if err != nil {
		t.Fatal(err)
	}
	// Each chain: ct state, 2 ICMPv6, DHCP, DHCPv6, the allows, the drop.
	want := []Chain{
		{IfName: "net1", Direction: "egress", Rules: 7},
		{IfName: "net1", Direction: "ingress", Rules: 6, Dropped: sent},
		{IfName: "net3", Direction: "ingress", Rules: 5 + 2 + 2 + 1},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Read:\n got %+v\nwant %+v", got, want)
	}
}

func TestNoNetns(t *testing.T) {
	testbed.RequireRoot(t)
	missing := filepath.Join(t.TempDir(), "gone")
	rs := []compile.Ruleset{{IfName: "net1", Ingress: denyAll}}
	if err := Program(missing, rs, Options{}); !errors.Is(err, ErrNoNetns) {
		t.Errorf("Program in a missing netns: %v, want ErrNoNetns", err)
	}
	if _, err := Read(missing); !errors.Is(err, ErrNoNetns) {
		t.Errorf("Read in a missing netns: %v, want ErrNoNetns", err)
	}
	if err := Remove(missing); err != nil {
		t.Errorf("Remove in a missing netns: %v, want nil", err)
	}
}

func TestFailedProgramKeepsTheOldRules(t *testing.T) {
	tp := newTopology(t)
	program(t, tp.srv.Path(), compile.Ruleset{IfName: "net1", Ingress: denyAll})
	for name, rs := range map[string][]compile.Ruleset{
		"unknown protocol": {{IfName: "net1", Ingress: allow(compile.Allow{Any: true,
			Ports: []compile.PortRange{{Protocol: "ICMP"}}})}},
		"reversed port range": {{IfName: "net1", Ingress: allow(compile.Allow{Any: true,
			Ports: []compile.PortRange{ports(spec.TCP, 90, 80)}})}},
		"invalid prefix":      {{IfName: "net1", Ingress: allow(compile.Allow{Addrs: []netip.Prefix{{}}})}},
		"duplicate interface": {{IfName: "net1"}, {IfName: "net1"}},
		"name too long":       {{IfName: "net1234567890123", Ingress: denyAll}},
	} {
		if err := Program(tp.srv.Path(), rs, Options{}); err == nil {
			t.Errorf("%s: Program succeeded", name)
		}
	}
	check(t, in("tcp", cliA, 7001, false)(tp), in("udp", cliA, 7001, false)(tp))
}

// TestReplaceIsAtomic floods denied datagrams while the table is replaced again and again:
// not one may pass, as one would if there were a moment without the table.
func TestReplaceIsAtomic(t *testing.T) {
	tp := newTopology(t)
	deny := compile.Ruleset{IfName: "net1", Ingress: denyAll}
	other := compile.Ruleset{IfName: "net1", Ingress: allow(allowFrom("10.1.0.4/32"))}
	program(t, tp.srv.Path(), deny)

	var c net.Conn
	err := tp.cli.Do(func(ns.NetNS) error {
		var err error
		c, err = net.Dial("udp", to(srv1, 7001).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var answers atomic.Int64
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
			answers.Add(1)
		}
	}()
	stop := make(chan struct{})
	sent := make(chan int)
	go func() {
		n := 0
		defer func() { sent <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Write([]byte("x")); err == nil {
				n++
			}
		}
	}()
	for i := range 50 {
		program(t, tp.srv.Path(), []compile.Ruleset{deny, other}[i%2])
	}
	close(stop)
	n := <-sent
	// Answers in flight when the flood stopped have long arrived by the time a denied
	// probe has waited its full time.
	check(t, in("udp", cliB, 7001, false)(tp))
	if n == 0 {
		t.Fatal("no datagram sent while replacing")
	}
	if got := answers.Load(); got != 0 {
		t.Errorf("%d of %d datagrams answered while the table was replaced", got, n)
	}
}

// TestFirstProgramNeverMerges: the cheap path for a netns without the table creates it
// exclusively, so a table that appeared meanwhile fails that transaction (and Program then
// replaces it) rather than being merged into.
func TestFirstProgramNeverMerges(t *testing.T) {
	testbed.RequireRoot(t)
	netns := testbed.NewNetNS(t)
	program(t, netns.Path(), compile.Ruleset{IfName: "net1", Ingress: denyAll})
	rs := []compile.Ruleset{{IfName: "net2", Egress: denyAll}}
	err := withConn(netns.Path(), func(c *nftables.Conn) error { return commit(c, false, rs, Options{}) })
	if !errors.Is(err, unix.EEXIST) {
		t.Fatalf("creating the table where it exists: %v, want EEXIST", err)
	}
	got, err := Read(netns.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].IfName != "net1" {
		t.Errorf("after a failed create: %+v, want net1 ingress alone", got)
	}
}

// TestTableLayout reads back the layout others rely on: base chains input and output
// (filter, priority filter, policy accept) jumping to in-<ifname> and out-<ifname>.
func TestTableLayout(t *testing.T) {
	testbed.RequireRoot(t)
	netns := testbed.NewNetNS(t)
	program(t, netns.Path(),
		compile.Ruleset{IfName: "net1", Ingress: denyAll, Egress: denyAll},
		compile.Ruleset{IfName: "net2", Egress: allow(compile.Allow{Any: true})},
		compile.Ruleset{IfName: "net3"},
	)
	got := map[string][]string{} // chain: its hook and the chains its rules jump to
	err := withConn(netns.Path(), func(c *nftables.Conn) error {
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return err
		}
		for _, ch := range chains {
			got[ch.Name] = append(got[ch.Name], describeHook(ch))
			rules, err := c.GetRules(ch.Table, ch)
			if err != nil {
				return err
			}
			for _, r := range rules {
				for _, e := range r.Exprs {
					if v, ok := e.(*expr.Verdict); ok && v.Kind == expr.VerdictJump {
						got[ch.Name] = append(got[ch.Name], v.Chain)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"input":    {"filter hook 1 priority 0 policy accept", "in-net1"},
		"output":   {"filter hook 3 priority 0 policy accept", "out-net1", "out-net2"},
		"in-net1":  {"regular"},
		"out-net1": {"regular"},
		"out-net2": {"regular"},
	}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("layout:\n got %v\nwant %v", got, want)
	}
}

func describeHook(ch *nftables.Chain) string {
	if ch.Hooknum == nil || ch.Priority == nil || ch.Policy == nil {
		return "regular"
	}
	policy := map[nftables.ChainPolicy]string{nftables.ChainPolicyAccept: "accept", nftables.ChainPolicyDrop: "drop"}
	return fmt.Sprintf("%s hook %d priority %d policy %s", ch.Type, *ch.Hooknum, *ch.Priority, policy[*ch.Policy])
}
