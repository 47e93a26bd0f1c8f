package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/spec"
	"github.com/multinet/multinet/internal/testbed"
)

// benchRulesets is ifaces interfaces with ingress isolated by n Allow entries of 10 IPv4
// prefixes and 2 port ranges each.
func benchRulesets(ifaces, n int) []compile.Ruleset {
	allows := make([]compile.Allow, n)
	for i := range allows {
		a := compile.Allow{Ports: []compile.PortRange{
			ports(spec.TCP, 8000, 8099), ports(spec.UDP, 5000+uint16(i), 5010+uint16(i)),
		}}
		for j := range 10 {
			a.Addrs = append(a.Addrs, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), byte(2 * j), 0}), 24))
		}
		allows[i] = a
	}
	rs := make([]compile.Ruleset, ifaces)
	for i := range rs {
		rs[i] = compile.Ruleset{IfName: fmt.Sprintf("net%d", i+1), Ingress: allow(allows...)}
	}
	return rs
}

// benchProgram measures Program replacing the table ("replace") and making it in a netns
// without one ("first"). Each runs in the netns the last one left: after a transaction that
// deleted something (the Remove before each "first" too), the next one in that netns waits
// for the kernel to free it (an RCU grace period, some 13 ms). A pod's ADD, in a new netns,
// does not wait.
func benchProgram(b *testing.B, rs []compile.Ruleset) {
	testbed.RequireRoot(b)
	for _, first := range []bool{false, true} {
		b.Run(map[bool]string{false: "replace", true: "first"}[first], func(b *testing.B) {
			netns := testbed.NewNetNS(b)
			for b.Loop() {
				if first {
					b.StopTimer()
					if err := Remove(netns.Path()); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				if err := Program(netns.Path(), rs, Options{}); err != nil {
					b.Fatal(err)
				}
			}
			chains, err := Read(netns.Path())
			if err != nil || len(chains) != len(rs) {
				b.Fatalf("Read: %v %+v", err, chains)
			}
			b.ReportMetric(float64(chains[0].Rules), "rules/chain")
		})
	}
}

// BenchmarkProgram programs one netns holding 1 or 3 interfaces, each with ingress isolated
// by 50 Allow entries of 10 prefixes and 2 port ranges.
func BenchmarkProgram(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("interfaces=%d", n), func(b *testing.B) { benchProgram(b, benchRulesets(n, 50)) })
	}
}

// BenchmarkProgramSmall is the common case: one interface, three allows.
func BenchmarkProgramSmall(b *testing.B) { benchProgram(b, benchRulesets(1, 3)) }

// BenchmarkProgramConcurrent replaces the small ruleset in 100 namespaces at once, as a
// policy change selecting 100 pods does; ns/op is the time until all are in.
func BenchmarkProgramConcurrent(b *testing.B) {
	testbed.RequireRoot(b)
	netns := make([]ns.NetNS, 100)
	for i := range netns {
		netns[i] = testbed.NewNetNS(b)
	}
	rs := benchRulesets(1, 3)
	for b.Loop() {
		var wg sync.WaitGroup
		for _, n := range netns {
			wg.Go(func() {
				if err := Program(n.Path(), rs, Options{}); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
}

// BenchmarkUpdate changes one interface's ingress (50 allows of 10 prefixes and 2 port
// ranges) back and forth: the addresses of one allow ("elements": set elements alone),
// the ports of one allow ("rules": its rules replaced in place), and the same change made
// by replacing the table with Program ("replace"). Every change deletes something, so
// each waits for the grace period the one before it started (see benchProgram).
func BenchmarkUpdate(b *testing.B) {
	testbed.RequireRoot(b)
	base := benchRulesets(1, 50)
	addrs := benchRulesets(1, 50)
	moved := slices.Clone(addrs[0].Ingress.Allow)
	moved[7].Addrs = slices.Clone(moved[7].Addrs)
	moved[7].Addrs[3] = netip.MustParsePrefix("10.200.0.0/24")
	addrs[0].Ingress = allow(moved...)
	portsChanged := benchRulesets(1, 50)
	reported := slices.Clone(portsChanged[0].Ingress.Allow)
	reported[7].Ports = []compile.PortRange{ports(spec.TCP, 9000, 9001)}
	portsChanged[0].Ingress = allow(reported...)
	for _, c := range []struct {
		name    string
		other   []compile.Ruleset
		program bool
	}{{"elements", addrs, false}, {"rules", portsChanged, false}, {"replace", portsChanged, true}} {
		b.Run(c.name, func(b *testing.B) {
			netns := testbed.NewNetNS(b)
			if err := Program(netns.Path(), base, Options{}); err != nil {
				b.Fatal(err)
			}
			states := [][]compile.Ruleset{base, c.other}
			i := 0
			for b.Loop() {
				old, cur := states[i%2], states[(i+1)%2]
				i++
				var err error
				if c.program {
					err = Program(netns.Path(), cur, Options{})
				} else {
					var how outcome
					how, err = update(netns.Path(), old, cur, Options{})
					if err == nil && how != edited {
						b.Fatalf("update did %d, want an edit", how)
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
