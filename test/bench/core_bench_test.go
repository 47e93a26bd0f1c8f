package bench

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/pprof/profile"

	"github.com/multinet/multinet/internal/attach"
	"github.com/multinet/multinet/internal/daemon"
	"github.com/multinet/multinet/internal/server"
	"github.com/multinet/multinet/internal/testbed"
)

const (
	latencyRuns = 60  // ADD+DEL pairs per path and network count
	throughput  = 160 // pods ADD+DEL at concurrency 16
	attached    = 250 // pods x 3 networks held attached for the RSS reading
	burst       = 200 // concurrent ADDs for the burst RSS reading
	// quiet is how long the node is left without requests before an RSS reading: multinetd
	// gives the heap a burst grew back after 10 to 20 s of quiet.
	quiet = 22 * time.Second
)

// BenchmarkCore prints the table the Core issue asks for. One iteration is the whole table:
// run with -benchtime 1x.
func BenchmarkCore(b *testing.B) {
	for range b.N {
		bd := newBed(b)
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "measure\tmultinet\tdirect delegates\toverhead")
		time.Sleep(quiet)
		fmt.Fprintf(tw, "daemon RSS idle, just started (%s after ready)\t%s\t-\t\n", quiet, rssSplit(b, bd.PID()))
		bd.latency(b, tw)
		bd.apiCost(b, tw)
		bd.throughput(b, tw)
		bd.memory(b, tw)
		bd.withProfiling(b)
		bd.daemonProfile(b, tw) // last: profiling grows the daemon's heap
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

func (bd *bed) latency(b *testing.B, tw *tabwriter.Writer) {
	for _, k := range []int{0, 1, 3} {
		sbs := bd.pods(b, fmt.Sprintf("lat%d", k), latencyRuns, k)
		var viaMultinet, direct []time.Duration
		for _, sb := range sbs {
			viaMultinet = append(viaMultinet, bd.multinetAddDel(b, sb))
			direct = append(direct, bd.directAddDel(b, sb, k))
		}
		bd.daemonTime(b, tw, k)
		for _, p := range []struct {
			name string
			q    float64
		}{{"p50", 0.5}, {"p99", 0.99}} {
			m, d := percentile(viaMultinet, p.q), percentile(direct, p.q)
			fmt.Fprintf(tw, "ADD+DEL %d secondary, %s\t%s\t%s\t%s\n", k, p.name, ms(m), ms(d), ms(m-d))
			b.ReportMetric(float64(m-d)/1e6, fmt.Sprintf("overhead-ms-%s-k%d", p.name, k))
		}
	}
}

// daemonTime prints how long multinetd itself spent per ADD and DEL (mean, from its
// histogram), since the last call, and each phase of it (multinet_cni_phase_seconds: all but
// "delegates" is multinetd's own work): the rest of the overhead is the shim and the socket.
func (bd *bed) daemonTime(b *testing.B, tw *tabwriter.Writer, k int) {
	now := bd.scrape(b, "multinet_cni_")
	for _, cmd := range []string{"ADD", "DEL"} {
		sumKey := fmt.Sprintf(`multinet_cni_request_duration_seconds_sum{command=%q}`, cmd)
		countKey := fmt.Sprintf(`multinet_cni_request_duration_seconds_count{command=%q}`, cmd)
		sum, count := now[sumKey]-bd.last[sumKey], now[countKey]-bd.last[countKey]
		if count > 0 {
			fmt.Fprintf(tw, "  of which in multinetd (mean %s, %d secondary)\t%s\t-\t\n", cmd, k,
				ms(time.Duration(sum/count*1e9)))
		}
		for _, phase := range []string{"plan", "intent", "delegates", "record", "publish", "result"} {
			key := fmt.Sprintf(`multinet_cni_phase_seconds_%%s{command=%q,phase=%q}`, cmd, phase)
			s, n := now[fmt.Sprintf(key, "sum")]-bd.last[fmt.Sprintf(key, "sum")], now[fmt.Sprintf(key, "count")]-bd.last[fmt.Sprintf(key, "count")]
			if n > 0 {
				fmt.Fprintf(tw, "    %s phase %s (mean)\t%.2f ms\t-\t\n", cmd, phase, s/n*1e3)
			}
		}
	}
	bd.last = now
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

// apiCost counts the daemon's API requests over ADDs of pods the caches already hold.
func (bd *bed) apiCost(b *testing.B, tw *tabwriter.Writer) {
	const n = 40
	sbs := bd.pods(b, "api", n, 3)
	time.Sleep(time.Second) // let the pod informer see them: the steady state
	before := bd.apiRequests(b)
	for _, sb := range sbs {
		bd.MustAdd(b, sb)
	}
	time.Sleep(2 * time.Second) // network-status patches are asynchronous
	after := bd.apiRequests(b)
	for _, sb := range sbs {
		bd.MustDel(b, sb)
	}
	for _, m := range []string{"GET", "PATCH", "POST", "PUT"} {
		per := float64(after[m]-before[m]) / n
		fmt.Fprintf(tw, "API %s per ADD (3 secondary)\t%.2f\t-\t\n", m, per)
		b.ReportMetric(per, "api-"+strings.ToLower(m)+"/add")
	}
}

// apiRequests scrapes multinet_api_requests_total by method.
func (bd *bed) apiRequests(b *testing.B) map[string]float64 {
	out := map[string]float64{}
	for sample, v := range bd.scrape(b, "multinet_api_requests_total{") {
		out[labelValue(sample, "method")] += v
	}
	return out
}

// scrape reads the daemon's metric samples whose text starts with prefix: sample -> value.
func (bd *bed) scrape(b *testing.B, prefix string) map[string]float64 {
	resp, err := http.Get(bd.metrics)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndex(line, " ")
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			b.Fatalf("metric sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// labelValue is the value of label in a sample such as name{a="x",b="y"}.
func labelValue(sample, label string) string {
	_, rest, ok := strings.Cut(sample, label+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

func (bd *bed) throughput(b *testing.B, tw *tabwriter.Writer) {
	for _, k := range []int{0, 1, 3} {
		sbs := bd.pods(b, fmt.Sprintf("thr%d", k), throughput, k)
		m := parallel(sbs, 16, func(sb *testbed.Sandbox) { bd.MustAdd(b, sb); bd.MustDel(b, sb) })
		d := parallel(sbs, 16, func(sb *testbed.Sandbox) { bd.directAddDel(b, sb, k) })
		mps, dps := float64(throughput)/m.Seconds(), float64(throughput)/d.Seconds()
		fmt.Fprintf(tw, "pods/s ADD+DEL, %d secondary, concurrency 16\t%.1f\t%.1f\t%.2fx of direct\n", k, mps, dps, mps/dps)
		b.ReportMetric(mps/dps, fmt.Sprintf("throughput-ratio-k%d", k))
	}
}

// BenchmarkDaemonCPU prints only multinetd's CPU per ADD+DEL under load and its split by
// span (the last rows of BenchmarkCore), for quick comparisons. Run with -benchtime 1x.
func BenchmarkDaemonCPU(b *testing.B) {
	for range b.N {
		bd := newBed(b)
		bd.withProfiling(b)
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		bd.daemonProfile(b, tw)
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// daemonProfile measures multinetd's CPU per ADD+DEL at concurrency 16 with 1 secondary
// network, saves its CPU profile and prints the CPU by span.
func (bd *bed) daemonProfile(b *testing.B, tw *tabwriter.Writer) {
	allocsBefore := bd.saveProfile(b, "allocs", strings.TrimSuffix(*daemonProfile, ".pprof")+"-allocs-before.pprof")
	cpu := bd.daemonCPU(b)
	start := time.Now()
	pods := bd.profile(b, 1, 20)
	elapsed := time.Since(start)
	cpu = bd.daemonCPU(b) - cpu
	allocsAfter := bd.saveProfile(b, "allocs", strings.TrimSuffix(*daemonProfile, ".pprof")+"-allocs-after.pprof")
	fmt.Fprintf(tw, "multinetd CPU per ADD+DEL under load (1 secondary, %.1f pods/s, pods created meanwhile)\t%.2f ms\t-\t\n",
		float64(pods)/elapsed.Seconds(), float64(cpu)/1e6/float64(pods))
	fmt.Fprintf(tw, "  its CPU profile (go tool pprof -top)\t%s\t-\t\n", *daemonProfile)
	fmt.Fprintf(tw, "  heap allocated per ADD+DEL (go tool pprof -sample_index alloc_space -base %s %s)\t%.0f KiB\t-\t\n",
		filepath.Base(allocsBefore.path), filepath.Base(allocsAfter.path), float64(allocsAfter.allocated-allocsBefore.allocated)/1024/float64(pods))
	spans := profileSpans(b, *daemonProfile)
	for _, sp := range spans {
		fmt.Fprintf(tw, "  CPU per ADD+DEL in %s (profile)\t%.2f ms\t-\t\n", sp.name, float64(sp.cpu)/1e6/float64(pods))
	}
}

// savedProfile is a heap profile of multinetd saved to path, with the bytes allocated so far.
type savedProfile struct {
	path      string
	allocated int64
}

// saveProfile saves the daemon's /debug/pprof/<name> profile to path.
func (bd *bed) saveProfile(b *testing.B, name, path string) savedProfile {
	resp, err := http.Get(bd.pprof + name)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("daemon %s profile: %s %v", name, resp.Status, err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	p, err := profile.ParseData(data)
	if err != nil {
		b.Fatalf("daemon %s profile: %v", name, err)
	}
	out := savedProfile{path: path}
	for i, st := range p.SampleType {
		if st.Type == "alloc_space" {
			for _, smp := range p.Sample {
				out.allocated += smp.Value[i]
			}
		}
	}
	return out
}

// span is the CPU a CPU profile's samples with one label value hold.
type span struct {
	name string
	cpu  time.Duration
}

// profileSpans splits a multinetd CPU profile by its labels: a socket request's phases
// (request=/cni with phase=plan, intent, delegates, ...; without a phase: decoding, locking,
// encoding), its background parts (part=informers, events, network-status, ...) and what
// carries no label (the Go runtime: GC, scheduler). Largest first.
func profileSpans(b *testing.B, path string) []span {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		b.Fatalf("%s: %v", path, err)
	}
	cpu := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			cpu = i
		}
	}
	if cpu < 0 {
		b.Fatalf("%s: no cpu samples", path)
	}
	by := map[string]time.Duration{}
	for _, smp := range p.Sample {
		name := "unlabelled (Go runtime: GC, scheduler)"
		if req := first(smp.Label[server.RequestLabel]); req != "" {
			name = "request " + req + ", " + cmp.Or(first(smp.Label[attach.PhaseLabel]), "outside phases (decode, lock, encode)")
		} else if part := first(smp.Label[daemon.PartLabel]); part != "" {
			name = "background " + part
		}
		by[name] += time.Duration(smp.Value[cpu])
	}
	var out []span
	for name, d := range by {
		out = append(out, span{name, d})
	}
	slices.SortFunc(out, func(a, b span) int { return cmp.Compare(b.cpu, a.cpu) })
	return out
}

func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

func (bd *bed) memory(b *testing.B, tw *tabwriter.Writer) {
	pid := bd.PID()
	time.Sleep(quiet)
	fmt.Fprintf(tw, "daemon RSS idle, after the runs above (%s after the last request)\t%s\t-\t\n", quiet, rssSplit(b, pid))
	held := bd.pods(b, "held", attached, 3)
	parallel(held, 16, func(sb *testbed.Sandbox) { bd.MustAdd(b, sb) })
	fmt.Fprintf(tw, "daemon RSS, %d pods x 3 networks attached, right after the ADDs\t%.1f MiB\t-\t\n", attached, rss(b, pid, "VmRSS"))
	time.Sleep(quiet)
	rssHeld := rss(b, pid, "VmRSS")
	fmt.Fprintf(tw, "daemon RSS, %d pods x 3 networks attached, %s later\t%.1f MiB\t-\t\n", attached, quiet, rssHeld)
	parallel(held, 16, func(sb *testbed.Sandbox) { bd.MustDel(b, sb) })

	sbs := bd.pods(b, "burst", burst, 1)
	var peak atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				if v := int64(rss(b, pid, "VmRSS") * 1024); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	wall := parallel(sbs, burst, func(sb *testbed.Sandbox) { bd.MustAdd(b, sb) })
	close(stop)
	fmt.Fprintf(tw, "%d concurrent ADDs (1 secondary), wall\t%.1f s\t-\t\n", burst, wall.Seconds())
	fmt.Fprintf(tw, "daemon peak RSS, burst of %d concurrent ADDs\t%.1f MiB\t-\t\n", burst, float64(peak.Load())/1024)
	b.ReportMetric(rssHeld, "rss-MiB-250x3")
	b.ReportMetric(float64(peak.Load())/1024, "rss-MiB-burst")
	parallel(sbs, 16, func(sb *testbed.Sandbox) { bd.MustDel(b, sb) })
}

// profile saves a CPU profile of multinetd (seconds long) while pods of k secondary networks
// are created, added and deleted at concurrency 16, and returns how many pods went through.
func (bd *bed) profile(b *testing.B, k int, seconds int) int64 {
	out, err := os.Create(*daemonProfile)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	profiled := make(chan error, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("%sprofile?seconds=%d", bd.pprof, seconds))
		if err == nil {
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("%s: %s", resp.Request.URL, resp.Status)
			} else {
				_, err = io.Copy(out, resp.Body)
			}
		}
		profiled <- err
	}()
	var pods atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sb := bd.NewSandbox(b, namespace, fmt.Sprintf("prof-%d-%d", w, i), annotation(k))
				bd.MustAdd(b, sb)
				bd.MustDel(b, sb)
				pods.Add(1)
			}
		}()
	}
	err = <-profiled
	close(stop)
	wg.Wait()
	if err != nil {
		b.Fatalf("daemon CPU profile: %v", err)
	}
	return pods.Load()
}
