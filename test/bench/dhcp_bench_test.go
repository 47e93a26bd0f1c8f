package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/dhcp"
	"github.com/multinet/multinet/internal/dhcp/dhcptest"
	"github.com/multinet/multinet/internal/testbed"
)

const (
	dhcpRuns     = 100              // sequential ADDs per latency figure
	renewPods    = 50               // pods renewing back to back for the renewal rate
	renewWindow  = 10 * time.Second // how long renewals are counted
	heldInMemory = 1000             // leases reloaded in-process for the memory figure
)

// BenchmarkDHCP prints the DHCP table: ADD-to-result latency with multinet-dhcp against
// dnsmasq on this machine (and host-local for comparison), the lease manager alone, renewals
// per second, and memory per held lease. One iteration is the whole table: -benchtime 1x.
func BenchmarkDHCP(b *testing.B) {
	for range b.N {
		bd := newBed(b)
		srv := dhcptest.New(b, 9, "--no-ping")
		for name, ipam := range map[string]string{"dhcp": "", "dhcp-fast": `,"renewAfter":"1ms"`} {
			bd.CP.CreateNAD(b, namespace, name, fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"bridge","bridge":%q,`+
				`"ipam":{"type":"multinet-dhcp"%s}}`, name, srv.Bridge, ipam))
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "measure\tp50\tp99\t")
		bd.dhcpLatency(b, tw)
		leaseManagerLatency(b, srv, tw)
		bd.renewals(b, srv, tw)
		leaseMemory(b, tw)
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// dhcpLatency times ADD (to the result the runtime gets) of pods with one secondary network,
// with multinet-dhcp and with host-local IPAM.
func (bd *bed) dhcpLatency(b *testing.B, tw *tabwriter.Writer) {
	for _, c := range []struct{ nad, label string }{{"dhcp", "multinet-dhcp"}, {"net1", "host-local"}} {
		var took []time.Duration
		for i := range dhcpRuns {
			sb := bd.NewSandbox(b, namespace, fmt.Sprintf("%s-%d", c.nad, i), map[string]string{
				"k8s.v1.cni.cncf.io/networks": c.nad})
			start := time.Now()
			bd.MustAdd(b, sb)
			took = append(took, time.Since(start))
			bd.MustDel(b, sb)
		}
		p50, p99 := percentile(took, 0.5), percentile(took, 0.99)
		fmt.Fprintf(tw, "pod ADD to result, cluster + 1 bridge network, %s\t%s\t%s\t\n", c.label, ms(p50), ms(p99))
		b.ReportMetric(float64(p50)/1e6, "add-ms-p50-"+c.label)
	}
}

// leaseManagerLatency times the lease manager alone (in this process): DISCOVER to ACK in
// a netns, the lease saved with fsync, the result rendered.
func leaseManagerLatency(b *testing.B, srv *dhcptest.Server, tw *tabwriter.Writer) {
	m, err := dhcp.New(b.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); m.Wait() }()
	m.Start(ctx)
	netns := testbed.NewNetNS(b)
	srv.Plug(b, netns, "net1")
	req := &cniapi.Request{ContainerID: "bench", Netns: netns.Path(), IfName: "net1", Args: "K8S_POD_NAME=bench",
		Config: []byte(`{"cniVersion":"1.0.0","name":"n","ipam":{"type":"multinet-dhcp"}}`)}
	var took []time.Duration
	for range dhcpRuns {
		start := time.Now()
		if _, err := m.Add(ctx, req); err != nil {
			b.Fatalf("lease manager ADD: %v\n%s", err, srv.Log())
		}
		took = append(took, time.Since(start))
		if err := m.Del(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	fmt.Fprintf(tw, "  of which the lease manager (DORA with dnsmasq, fsync)\t%s\t%s\t\n",
		ms(percentile(took, 0.5)), ms(percentile(took, 0.99)))
}

// renewals holds pods whose leases renew back to back (renewAfter 1ms) and counts the
// DHCPACKs dnsmasq sends for them in the window: the end-to-end renewal rate.
func (bd *bed) renewals(b *testing.B, srv *dhcptest.Server, tw *tabwriter.Writer) {
	sbs := make([]*testbed.Sandbox, renewPods)
	for i := range sbs {
		sbs[i] = bd.NewSandbox(b, namespace, fmt.Sprintf("renew-%d", i), map[string]string{"k8s.v1.cni.cncf.io/networks": "dhcp-fast"})
	}
	rssBefore := rss(b, bd.PID(), "VmRSS")
	parallel(sbs, 16, func(sb *testbed.Sandbox) { bd.MustAdd(b, sb) })
	before, cpuBefore := acks(b, srv), cpuTime(b, bd.PID())
	time.Sleep(renewWindow)
	n, cpu := acks(b, srv)-before, cpuTime(b, bd.PID())-cpuBefore
	rssHeld := rss(b, bd.PID(), "VmRSS")
	parallel(sbs, 16, func(sb *testbed.Sandbox) { bd.MustDel(b, sb) })
	rate := float64(n) / renewWindow.Seconds()
	fmt.Fprintf(tw, "renewals/s, %d leases renewing back to back (dnsmasq on this machine)\t%.0f/s\t-\t\n", renewPods, rate)
	fmt.Fprintf(tw, "  multinetd CPU per renewal\t%.0f µs\t-\t\n", float64(cpu.Microseconds())/float64(max(n, 1)))
	fmt.Fprintf(tw, "daemon RSS growth with %d DHCP pods held and renewing\t%.1f MiB\t-\t\n", renewPods, rssHeld-rssBefore)
	b.ReportMetric(rate, "renewals/s")
}

// cpuTime is the user+system CPU time of a process (/proc/PID/stat, in clock ticks of 10ms).
func cpuTime(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	var utime, stime int64
	if _, err := fmt.Sscan(fields[11]+" "+fields[12], &utime, &stime); err != nil {
		b.Fatalf("/proc/%d/stat: %v", pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// acks counts the DHCPACKs in dnsmasq's log.
func acks(b *testing.B, srv *dhcptest.Server) int {
	data, err := os.ReadFile(filepath.Join(srv.Dir, "dnsmasq.log"))
	if err != nil {
		b.Fatal(err)
	}
	return strings.Count(string(data), "DHCPACK(")
}

// leaseMemory reloads heldInMemory lease records into a lease manager in this process and
// reads the heap and stacks it holds for them: the daemon's memory per held lease (each is a
// record, its last ACK and one idle keeper goroutine with a timer). The records point at a
// netns without the interface, so the INIT-REBOOT at reload fails at once and each keeper
// then waits for T1, as it does for a lease that is bound.
func leaseMemory(b *testing.B, tw *tabwriter.Writer) {
	dir := b.TempDir()
	netns := testbed.NewNetNS(b)
	ack := sampleACK(b)
	for i := range heldInMemory {
		l := dhcp.Lease{ContainerID: fmt.Sprintf("c%06d", i), IfName: "net1", Netns: netns.Path(), Network: "bench/dhcp",
			ConfName: "dhcp", HWAddr: "02:00:00:00:00:01", ACK: ack, Bound: time.Now(), Uplink: "mdh000000"}
		data, err := json.Marshal(l)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, l.ContainerID+"_net1.json"), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	before := heap()
	m, err := dhcp.New(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	time.Sleep(3 * time.Second) // the failed INIT-REBOOTs settle
	after := heap()
	held := m.Held()
	cancel()
	m.Wait()
	per := float64(after-before) / float64(held)
	fmt.Fprintf(tw, "lease manager memory per held lease (%d reloaded, in-process heap+stacks)\t%.1f KiB\t-\t\n", held, per/1024)
	b.ReportMetric(per/1024, "KiB/lease")
}

func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// sampleACK is a DHCPACK of the size a real server sends (router, DNS, domain, routes).
func sampleACK(b *testing.B) []byte {
	_, dst, _ := net.ParseCIDR("10.41.0.0/16")
	a, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithYourIP(net.IPv4(10, 40, 9, 7)),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)), dhcpv4.WithLeaseTime(86400), dhcpv4.WithRouter(net.IPv4(10, 40, 9, 1)),
		dhcpv4.WithDNS(net.IPv4(10, 40, 9, 53)), dhcpv4.WithOption(dhcpv4.OptDomainName("bench.test")),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 40, 9, 1))),
		dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(&dhcpv4.Route{Dest: dst, Router: net.IPv4(10, 40, 9, 1)})))
	if err != nil {
		b.Fatal(err)
	}
	return a.ToBytes()
}
