package firewall

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/spec"
	"github.com/multinet/multinet/internal/testbed"
)

// step is the rules of the server's net1 and net2 and what they let through.
type step struct {
	name   string
	rs     []compile.Ruleset
	want   outcome // of the Update to this step
	probes []func(*topology) probe
}

func net1(ingress, egress *compile.Direction) compile.Ruleset {
	return compile.Ruleset{IfName: "net1", Network: "default/red", Ingress: ingress, Egress: egress}
}

// TestUpdateTruthTable walks the server's rules from step to step with Update: after each,
// the packets pass exactly as the step's rules say, and the table is the one Program makes.
func TestUpdateTruthTable(t *testing.T) {
	tp := newTopology(t)
	ref := testbed.NewNetNS(t) // where Program makes each step's table, to compare
	udp7003 := compile.Allow{Any: true, Ports: []compile.PortRange{ports(spec.UDP, 7003, 0)}}
	steps := []step{{
		name: "first rules",
		want: replaced,
		rs:   []compile.Ruleset{net1(allow(allowFrom("10.1.0.2/32", "10.1.0.4/32"), udp7003), nil)},
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, true), in("tcp", cliB, 7001, false), in("tcp", cliC, 7001, true),
			in("tcp", cliD, 7001, false), in("udp", cliB, 7003, true),
		},
	}, {
		name: "only addresses changed",
		want: edited,
		rs:   []compile.Ruleset{net1(allow(allowFrom("10.1.0.3/32", "10.1.0.5/32"), udp7003), nil)},
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, false), in("tcp", cliB, 7001, true), in("tcp", cliC, 7001, false),
			in("tcp", cliD, 7001, true), in("udp", cliA, 7003, true),
		},
	}, {
		// [.3,.3] becomes [.2,.3]: a range of the same end and another start.
		name: "a range grown",
		want: edited,
		rs:   []compile.Ruleset{net1(allow(allowFrom("10.1.0.2/32", "10.1.0.3/32", "10.1.0.5/32", "fd01::2/128", "fd01::100/120"), udp7003), nil)},
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, true), in("tcp", cliB, 7001, true), in("tcp", cliC, 7001, false),
			in("tcp", cliD, 7001, true), in("tcp", cliA6, 7001, true), in("tcp", cliB6, 7001, false),
		},
	}, {
		name: "ports changed",
		want: edited,
		rs: []compile.Ruleset{net1(allow(compile.Allow{Addrs: prefixes("10.1.0.2/32", "10.1.0.3/32", "10.1.0.5/32"),
			Ports: []compile.PortRange{ports(spec.TCP, 7002, 0)}}, udp7003), nil)},
		probes: []func(*topology) probe{
			in("tcp", cliA, 7001, false), in("tcp", cliA, 7002, true), in("tcp", cliD, 7002, true),
			in("tcp", cliC, 7002, false), in("udp", cliC, 7003, true), in("tcp", cliA6, 7002, false),
		},
	}, {
		name: "a set becomes one address",
		want: edited,
		rs: []compile.Ruleset{net1(allow(compile.Allow{Addrs: prefixes("10.1.0.4/32"),
			Ports: []compile.PortRange{ports(spec.TCP, 7002, 0)}}, udp7003), nil)},
		probes: []func(*topology) probe{
			in("tcp", cliC, 7002, true), in("tcp", cliA, 7002, false), in("udp", cliB, 7003, true),
		},
	}, {
		name: "an interface added",
		want: edited,
		rs: []compile.Ruleset{
			net1(allow(compile.Allow{Addrs: prefixes("10.1.0.4/32"), Ports: []compile.PortRange{ports(spec.TCP, 7002, 0)}}, udp7003), nil),
			{IfName: "net2", Ingress: denyAll},
		},
		probes: []func(*topology) probe{
			in("tcp", cliC, 7002, true), in("tcp", cliA, 7002, false), viaNet2("tcp", cli2, false), viaNet2("udp", cli26, false),
		},
	}, {
		name: "egress isolated",
		want: edited,
		rs: []compile.Ruleset{
			net1(allow(compile.Allow{Addrs: prefixes("10.1.0.4/32"), Ports: []compile.PortRange{ports(spec.TCP, 7002, 0)}}, udp7003),
				allow(allowFrom("10.1.0.2/32", "10.1.0.3/32"))),
			{IfName: "net2", Ingress: denyAll},
		},
		probes: []func(*topology) probe{
			in("tcp", cliC, 7002, true), out("tcp", cliA, 7001, true), out("udp", cliC, 7001, false),
			out("tcp", cliB, 7004, true), viaNet2("tcp", cli2, false),
		},
	}, {
		name: "ingress no longer isolated, an interface removed",
		want: edited,
		rs:   []compile.Ruleset{net1(nil, allow(allowFrom("10.1.0.2/32", "10.1.0.3/32")))},
		probes: []func(*topology) probe{
			in("tcp", cliD, 7001, true), out("tcp", cliA, 7001, true), out("udp", cliC, 7001, false),
			viaNet2("tcp", cli2, true),
		},
	}, {
		name: "ingress isolated again",
		want: edited,
		rs:   []compile.Ruleset{net1(denyAll, allow(allowFrom("10.1.0.2/32", "10.1.0.3/32")))},
		probes: []func(*topology) probe{
			in("tcp", cliD, 7001, false), in("udp", cliA, 7001, false), out("tcp", cliB, 7001, true),
		},
	}, {
		name: "no rules",
		want: replaced,
		rs:   []compile.Ruleset{net1(nil, nil)},
		probes: []func(*topology) probe{
			in("tcp", cliD, 7001, true), out("udp", cliC, 7001, true),
		},
	}, {
		name: "rules again",
		want: replaced,
		rs:   []compile.Ruleset{net1(allow(allowFrom("10.1.0.4/31")), nil)},
		probes: []func(*topology) probe{
			in("tcp", cliC, 7001, true), in("tcp", cliD, 7001, true), in("tcp", cliA, 7001, false),
		},
	}}
	var prev []compile.Ruleset
	for _, s := range steps {
		got, err := update(tp.srv.Path(), prev, s.rs, Options{})
		if err != nil {
			t.Fatalf("%s: Update: %v", s.name, err)
		}
		if got != s.want {
			t.Errorf("%s: Update did %d, want %d (0 nothing, 1 edited, 2 replaced)", s.name, got, s.want)
		}
		program(t, ref.Path(), s.rs...)
		if got, want := dumpTable(t, tp.srv.Path()), dumpTable(t, ref.Path()); got != want {
			t.Errorf("%s: table after Update:\n%s\nwant, as Program makes it:\n%s", s.name, got, want)
		}
		probes := make([]probe, len(s.probes))
		for i, p := range s.probes {
			probes[i] = p(tp)
		}
		check(t, probes...)
		prev = s.rs
	}
}

// TestUpdateWithoutChangeSendsNothing: the same rules (the policies that make them aside)
// need no netlink at all, which a netns that does not exist shows.
func TestUpdateWithoutChangeSendsNothing(t *testing.T) {
	testbed.RequireRoot(t)
	missing := filepath.Join(t.TempDir(), "gone")
	rs := []compile.Ruleset{net1(allow(allowFrom("10.1.0.2/32", "10.1.0.4/32")), denyAll), {IfName: "net2"}}
	same := []compile.Ruleset{net1(allow(allowFrom("10.1.0.2/32", "10.1.0.4/32")), denyAll), {IfName: "net2"}}
	same[0].Policies = []string{"default/other"}
	if err := Update(missing, rs, same, Options{}); err != nil {
		t.Errorf("Update without a change: %v, want nil without netlink", err)
	}
	if err := Update(missing, []compile.Ruleset{{IfName: "net1"}}, nil, Options{}); err != nil {
		t.Errorf("Update between rules without isolation: %v, want nil without netlink", err)
	}
	changed := []compile.Ruleset{net1(allow(allowFrom("10.1.0.2/32", "10.1.0.5/32")), denyAll)}
	if err := Update(missing, rs, changed, Options{}); !errors.Is(err, ErrNoNetns) {
		t.Errorf("Update with a change: %v, want ErrNoNetns", err)
	}
}

// TestUpdateFromWrongOldReplaces: when the table is not what old says, the kernel refuses
// the edit and Update replaces the table.
func TestUpdateFromWrongOldReplaces(t *testing.T) {
	testbed.RequireRoot(t)
	netns, ref := testbed.NewNetNS(t), testbed.NewNetNS(t)
	program(t, netns.Path(), net1(allow(allowFrom("10.1.0.2/32", "10.1.0.4/32")), nil))
	wrongOld := []compile.Ruleset{net1(allow(allowFrom("10.1.0.3/32", "10.1.0.5/32")), nil)}
	cur := []compile.Ruleset{net1(allow(allowFrom("10.1.0.3/32", "10.1.0.6/32")), nil)}
	if got, err := update(netns.Path(), wrongOld, cur, Options{}); err != nil || got != replaced {
		t.Fatalf("Update: %d, %v; want the table replaced (%d)", got, err, replaced)
	}
	program(t, ref.Path(), cur...)
	if got, want := dumpTable(t, netns.Path()), dumpTable(t, ref.Path()); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

// TestUpdateIsAtomic floods a denied flow while Update edits the rules around it, over and
// over, the edits of elements alone and those that refill the chain; meanwhile new flows
// of an allow that never changes must each pass.
func TestUpdateIsAtomic(t *testing.T) {
	tp := newTopology(t)
	unchanged := compile.Allow{Any: true, Ports: []compile.PortRange{ports(spec.UDP, 7002, 0)}}
	states := [][]compile.Ruleset{
		{net1(allow(unchanged, allowFrom("10.1.0.3/32", "10.1.0.5/32")), nil)},
		{net1(allow(unchanged, allowFrom("10.1.0.4/32", "10.1.0.5/32")), nil)},
		{net1(allow(unchanged, compile.Allow{Addrs: prefixes("10.1.0.3/32", "10.1.0.5/32"),
			Ports: []compile.PortRange{ports(spec.TCP, 7003, 0)}}), nil)},
		{net1(allow(unchanged, allowFrom("10.1.0.3/32", "10.1.0.5/32")), denyAll)},
	}
	program(t, tp.srv.Path(), states[0]...)

	answered, sent := floodDenied(t, tp)
	stop := make(chan struct{})
	lost := make(chan error, 1)
	go func() { lost <- newFlowsPass(tp, stop) }()
	prev := states[0]
	for i := range 60 {
		cur := states[(i+1)%len(states)]
		if err := Update(tp.srv.Path(), prev, cur, Options{}); err != nil {
			t.Fatalf("Update %d: %v", i, err)
		}
		prev = cur
	}
	close(stop)
	if err := <-lost; err != nil {
		t.Errorf("a new flow of the unchanged allow: %v", err)
	}
	n := sent()
	check(t, in("udp", cliA, 7001, false)(tp))
	if n == 0 {
		t.Fatal("no datagram sent while updating")
	}
	if got := answered(); got != 0 {
		t.Errorf("%d of %d denied datagrams answered while the rules were updated", got, n)
	}
}

// floodDenied sends UDP datagrams from cliA to srv's 7001, which no state allows, until
// the test ends; sent stops it and tells how many went, answered how many came back.
func floodDenied(t *testing.T, tp *topology) (answered func() int64, sent func() int) {
	t.Helper()
	var c net.Conn
	err := tp.cli.Do(func(ns.NetNS) error {
		var err error
		c, err = (&net.Dialer{LocalAddr: &net.UDPAddr{IP: cliA.AsSlice()}}).Dial("udp", to(srv1, 7001).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
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
	stop, count := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		defer func() { count <- n }()
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
	return answers.Load, func() int { close(stop); return <-count }
}

// newFlowsPass opens new UDP flows from cliB to srv's 7002, one after the other, until
// stop: each must get its echo (a new flow: conntrack does not let it through).
func newFlowsPass(tp *topology, stop chan struct{}) error {
	for i := 0; ; i++ {
		select {
		case <-stop:
			if i == 0 {
				return errors.New("no flow opened")
			}
			return nil
		default:
		}
		if err := in("udp", cliB, 7002, true)(tp).run(); err != nil {
			return fmt.Errorf("flow %d: %w", i, err)
		}
	}
}

// dumpTable describes multinet's table in netnsPath: its chains with their rules, its sets
// with their elements, each sorted by name; counters read as zero.
func dumpTable(t *testing.T, netnsPath string) string {
	t.Helper()
	var sb strings.Builder
	err := withConn(netnsPath, func(c *nftables.Conn) error {
		table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
		chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return err
		}
		slices.SortFunc(chains, func(a, b *nftables.Chain) int { return strings.Compare(a.Name, b.Name) })
		for _, ch := range chains {
			fmt.Fprintf(&sb, "chain %s %s\n", ch.Name, describeHook(ch))
			rules, err := c.GetRules(table, ch)
			if err != nil {
				return err
			}
			for _, r := range rules {
				sb.WriteString(" ")
				for _, e := range r.Exprs {
					if _, ok := e.(*expr.Counter); ok {
						e = &expr.Counter{}
					}
					fmt.Fprintf(&sb, " %T%+v", e, e)
				}
				sb.WriteString("\n")
			}
		}
		sets, err := c.GetSets(table)
		if err != nil && len(chains) > 0 {
			return err
		}
		slices.SortFunc(sets, func(a, b *nftables.Set) int { return strings.Compare(a.Name, b.Name) })
		for _, s := range sets {
			elems, err := c.GetSetElements(s)
			if err != nil {
				return err
			}
			keys := make([]string, len(elems))
			for i, e := range elems {
				keys[i] = fmt.Sprintf("%x/%t", e.Key, e.IntervalEnd)
			}
			slices.Sort(keys)
			fmt.Fprintf(&sb, "set %s interval=%t %v\n", s.Name, s.Interval, keys)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dumping table in %s: %v", netnsPath, err)
	}
	return sb.String()
}

// TestUpdateEditsRulesInPlace changes some allows of a chain and not others, the rules of
// the others kept: the table is the one Program makes, rule for rule, in order.
func TestUpdateEditsRulesInPlace(t *testing.T) {
	testbed.RequireRoot(t)
	a := allowFrom("10.1.0.2/32", "10.1.0.4/32")
	b := compile.Allow{Any: true, Ports: []compile.PortRange{ports(spec.TCP, 7001, 0), ports(spec.UDP, 7002, 7003)}}
	c := compile.Allow{Addrs: prefixes("fd01::2/128", "10.1.0.9/32"), Ports: []compile.PortRange{ports(spec.SCTP, 0, 0)}}
	none := compile.Allow{} // no address: no rule
	d := allowFrom("10.1.0.3/32")
	bPorts := compile.Allow{Any: true, Ports: []compile.PortRange{ports(spec.TCP, 7004, 0)}}
	cMore := compile.Allow{Addrs: prefixes("fd01::2/128", "fd01::8/125", "10.1.0.9/32"), Ports: c.Ports}
	steps := [][]compile.Allow{
		{a, b, c, none, d},
		{a, bPorts, c, none, d},     // one in the middle
		{a, b, cMore, none, d},      // two in a row, one of them now with a set
		{d, b, cMore, none, a},      // the first and the last
		{d, b, cMore, a, a},         // one that had no rule
		{d, b, cMore, none, bPorts}, // one that has none now, the next changed
	}
	for _, o := range []Options{{}, {AcceptICMPEcho: true}} {
		netns, ref := testbed.NewNetNS(t), testbed.NewNetNS(t)
		var prev []compile.Ruleset
		for i, s := range steps {
			cur := []compile.Ruleset{net1(allow(s...), denyAll)}
			how, err := update(netns.Path(), prev, cur, o)
			if err != nil {
				t.Fatalf("step %d: Update: %v", i, err)
			}
			if want := map[bool]outcome{true: replaced, false: edited}[i == 0]; how != want {
				t.Errorf("step %d: Update did %d, want %d", i, how, want)
			}
			if err := Program(ref.Path(), cur, o); err != nil {
				t.Fatalf("step %d: Program: %v", i, err)
			}
			if got, want := dumpTable(t, netns.Path()), dumpTable(t, ref.Path()); got != want {
				t.Errorf("step %d %+v: table after Update:\n%s\nwant, as Program makes it:\n%s", i, o, got, want)
			}
			prev = cur
		}
	}
}
