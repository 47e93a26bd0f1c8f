package routes

import (
	"fmt"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// reportP50 adds the median of the samples to the benchmark's output.
func reportP50(b *testing.B, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds()), "p50-µs/op")
}

func group64() map[string]SubnetGroup {
	g := SubnetGroup{Subnets: map[string]Subnet{}}
	for i := 0; i < 64; i++ {
		g.Subnets[fmt.Sprintf("10.202.%d.0/24", i)] = Subnet{GW: fmt.Sprintf("10.202.%d.1", i)}
	}
	return map[string]SubnetGroup{"big": g}
}

// BenchmarkApplySubnetGroup64 times planning and installing a 64-subnet group (63 routes) on
// one interface, from a clean table each time.
func BenchmarkApplySubnetGroup64(b *testing.B) {
	needRoot(b)
	pod, _ := linkPod(b, "10.202.0.10/24")
	groups, err := CompileGroups(group64(), "subnetGroups")
	if err != nil {
		b.Fatal(err)
	}
	addr := []netip.Prefix{netip.MustParsePrefix("10.202.0.10/24")}
	var samples []time.Duration
	err = ns.WithNetNSPath(nsPath(pod), func(ns.NetNS) error {
		link, err := lookupLink("net1")
		if err != nil {
			return err
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			plan, err := PlanSubnetGroups(groups, addr)
			if err != nil {
				return err
			}
			wants := make([]Want, 0, len(plan))
			for _, p := range plan {
				wants = append(wants, Want{Dst: p.Dst, GW: p.GW})
			}
			outs, err := EnsureRoutes(link, wants)
			if err != nil || len(outs) != 63 || !outs[62].Added {
				return fmt.Errorf("apply: %d outcomes, %w", len(outs), err)
			}
			samples = append(samples, time.Since(start))
			b.StopTimer()
			if _, err := DeleteRoutes(link, unix.RT_TABLE_MAIN, func(r netlink.Route) bool { return r.Protocol == Proto }); err != nil {
				return err
			}
			b.StartTimer()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	reportP50(b, samples)
}

// BenchmarkChainedAdd times one ADD of the plugin binary as a runtime runs it (exec, parse,
// enter the netns, plan a 4-subnet group, install 3 routes, print the result).
func BenchmarkChainedAdd(b *testing.B) {
	needRoot(b)
	pod, prev := linkPod(b, "10.201.1.10/24", "fd00:201:1::10/64")
	conf := routesPlugin(map[string]any{"subnetGroups": ddsGroup()})
	var samples []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := invokePlugin(b, "ADD", nsPath(pod), "net1", conf, prev)
		if err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
		b.StopTimer()
		if _, err := invokePlugin(b, "DEL", nsPath(pod), "net1", conf, res); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportP50(b, samples)
}
