package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/multinet/multinet/internal/testbed"
)

// phaseRuns is how many pods each row of BenchmarkPhases times.
const phaseRuns = 40

// BenchmarkPhases prints ADD and DEL apart, through multinet and direct, with the daemon's
// phases (multinet_cni_phase_seconds) and its own CPU per ADD+DEL (user + system of the
// multinetd process, its children's excluded). DEL runs right after ADD, then again with a
// pause after ADD (settle), which shows what work left over from the ADD (network-status,
// Events, hot plug) costs the DEL on this machine. Run with -benchtime 1x.
func BenchmarkPhases(b *testing.B) {
	for range b.N {
		bd := newBed(b)
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "p50 (%d pods; load average %s)\tmultinet\tdirect delegates\toverhead\n", phaseRuns, loadAverage())
		for _, k := range []int{0, 1} {
			for _, settle := range []time.Duration{0, 300 * time.Millisecond} {
				bd.phases(b, tw, k, settle)
			}
		}
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

func (bd *bed) phases(b *testing.B, tw *tabwriter.Writer, k int, settle time.Duration) {
	sbs := bd.pods(b, fmt.Sprintf("ph%d-%d", k, settle.Milliseconds()), phaseRuns, k)
	var mAdd, mDel, dAdd, dDel []time.Duration
	bd.last = bd.scrape(b, "multinet_cni_") // the phases from here on
	cpu := bd.daemonCPU(b)
	var inMultinet time.Duration
	for _, sb := range sbs {
		start := time.Now()
		bd.MustAdd(b, sb)
		mAdd = append(mAdd, time.Since(start))
		inMultinet += time.Since(start)
		time.Sleep(settle)
		start = time.Now()
		bd.MustDel(b, sb)
		mDel = append(mDel, time.Since(start))
		inMultinet += time.Since(start)
		a, d := bd.directApart(b, sb, k, settle)
		dAdd, dDel = append(dAdd, a), append(dDel, d)
	}
	cpu = bd.daemonCPU(b) - cpu
	label := fmt.Sprintf("%d secondary, DEL %s after ADD", k, settle)
	fmt.Fprintf(tw, "ADD, %s\t%s\t%s\t%s\n", label, ms(percentile(mAdd, 0.5)), ms(percentile(dAdd, 0.5)), ms(percentile(mAdd, 0.5)-percentile(dAdd, 0.5)))
	fmt.Fprintf(tw, "DEL, %s\t%s\t%s\t%s\n", label, ms(percentile(mDel, 0.5)), ms(percentile(dDel, 0.5)), ms(percentile(mDel, 0.5)-percentile(dDel, 0.5)))
	fmt.Fprintf(tw, "  multinetd CPU per ADD+DEL (all its threads, plugins excluded)\t%.2f ms\t-\t\n", float64(cpu)/1e6/float64(len(sbs)))
	bd.daemonTime(b, tw, k)
}

// directApart calls the same delegates as multinet would, without it, and times ADD and DEL
// apart, settle between them.
func (bd *bed) directApart(b *testing.B, sb *testbed.Sandbox, k int, settle time.Duration) (add, del time.Duration) {
	ctx := testbed.Ctx(b)
	lists := append([]*libcni.NetworkConfigList{bd.cluster}, bd.nets[:k]...)
	rts := make([]*libcni.RuntimeConf, len(lists))
	start := time.Now()
	for i, l := range lists {
		rts[i] = bd.RuntimeConf(sb)
		if i > 0 {
			rts[i].IfName = fmt.Sprintf("net%d", i)
		}
		if _, err := bd.direct.AddNetworkList(ctx, l, rts[i]); err != nil {
			b.Fatalf("direct ADD %s: %v", l.Name, err)
		}
	}
	add = time.Since(start)
	time.Sleep(settle)
	start = time.Now()
	for i := len(lists) - 1; i >= 0; i-- {
		if err := bd.direct.DelNetworkList(ctx, lists[i], rts[i]); err != nil {
			b.Fatalf("direct DEL %s: %v", lists[i].Name, err)
		}
	}
	return add, time.Since(start)
}

// daemonCPU is the CPU time multinetd has used so far (utime + stime of /proc/PID/stat; the
// plugins it ran are counted apart, in cutime and cstime).
func (bd *bed) daemonCPU(b *testing.B) time.Duration { return bd.statCPU(b, 11) }

// daemonChildCPU is the CPU time of the processes multinetd has run and reaped so far: the
// plugins (cutime + cstime of /proc/PID/stat).
func (bd *bed) daemonChildCPU(b *testing.B) time.Duration { return bd.statCPU(b, 13) }

// statCPU sums the two clock-tick fields of /proc/PID/stat from index i, counted from the
// state field.
func (bd *bed) statCPU(b *testing.B, i int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", bd.PID()))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at the state, field 3.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	var ticks int64
	for _, f := range fields[i : i+2] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %v", bd.PID(), err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// loadAverage is the 1-minute load average, for the table's heading.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(data))[0]
}
