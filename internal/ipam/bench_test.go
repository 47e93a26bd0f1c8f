package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/multinet/multinet/internal/ipam/blocks"
	"github.com/multinet/multinet/internal/testbed"
)

// BenchmarkIPAM prints the cluster-wide IPAM table: pods spread over 10 nodes' managers
// (durable records, as multinetd writes them) ADD at a concurrency of 50 against a real
// kube-apiserver, then DEL, twice (the second time the blocks are claimed). Rows: a roomy
// pool (each node claims its own blocks), a small pool in small blocks (still enough for
// every node) and the same small pool in /26 blocks (8 blocks for 10 nodes: nodes borrow).
// Duplicates and leaks are counted, not assumed. Run with -benchtime 1x.
func BenchmarkIPAM(b *testing.B) {
	for range b.N {
		cp := testbed.StartControlPlane(b)
		cfg := rest.CopyConfig(cp.Config)
		cfg.QPS, cfg.Burst = 50, 100
		api, err := blocks.NewClient(cfg)
		if err != nil {
			b.Fatal(err)
		}
		warmUp(b, api)
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "multinet-ipam, 10 nodes, concurrency 50 (load average %s)\n", loadAverage())
		fmt.Fprintln(tw, "pool\tpods\tretried\tADD/s\tADD p50 ms\tADD p99 ms\tDEL p50 ms\tAPI req/ADD\tblocks\tborrowed\tduplicates\tleaked\t")
		for _, c := range []struct {
			name, ipam string
			pods       int
		}{
			{"10.100.0.0/20 in /26", `"range":"10.100.0.0/20","network_name":"bench-roomy"`, 1000},
			{"10.102.0.0/23 in /28", `"range":"10.102.0.0/23","network_name":"bench-small","block_size":28`, 480},
			{"10.101.0.0/23 in /26", `"range":"10.101.0.0/23","network_name":"bench-tight"`, 480},
		} {
			benchPool(b, tw, cfg, api, c.name, conf("bench", c.ipam), c.pods)
		}
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchPool(b *testing.B, tw *tabwriter.Writer, cfg *rest.Config, api blocks.Client, name string, c []byte, pods int) {
	const nodes = 10
	set := fast
	set.NoSync, set.FlushInterval = false, 2*time.Second // multinetd's defaults
	cnt := &counting{}
	var ms []*Manager
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range nodes {
		own, err := blocks.NewClient(cfg) // each node its own client and rate limiter, as multinetd
		if err != nil {
			b.Fatal(err)
		}
		m, err := New(fmt.Sprintf("bench-%02d", i), b.TempDir(), set, Deps{API: cnt.of(own), Log: quiet})
		if err != nil {
			b.Fatal(err)
		}
		m.Start(ctx)
		ms = append(ms, m)
	}
	for _, round := range []string{"first pods", "again"} {
		benchRound(b, tw, cnt, api, name+", "+round, c, pods, ms)
	}
}

// benchRound ADDs pods at once over the nodes, then DELs them, and prints one row.
func benchRound(b *testing.B, tw *tabwriter.Writer, cnt *counting, api blocks.Client, name string, c []byte, pods int, ms []*Manager) {
	const concurrency = 50
	nodes := len(ms)
	obs := &countObs{}
	for _, m := range ms {
		m.deps.Obs = obs
	}
	reqs0 := cnt.total()
	var retried atomic.Int32
	type one struct {
		m    *Manager
		cid  string
		addr netip.Addr
		took time.Duration
	}
	results := make([]one, pods)
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				m := ms[i%nodes]
				cid := fmt.Sprintf("bench-%d", i)
				t0 := time.Now()
				out, err := m.Add(testbed.Ctx(b), req("ADD", c, cid, pod{"default", cid, cid}))
				for try := 0; err != nil && ToCNI(err).Code == types.ErrTryAgainLater && try < 5; try++ {
					retried.Add(1) // the runtime retries a "try again later"
					time.Sleep(100 * time.Millisecond)
					out, err = m.Add(testbed.Ctx(b), req("ADD", c, cid, pod{"default", cid, cid}))
				}
				if err != nil {
					b.Errorf("ADD %s on %s: %v", cid, m.node, err)
					continue
				}
				results[i] = one{m, cid, addrsOf(b, out)[0].Addr(), time.Since(t0)}
			}
		}()
	}
	for i := range pods {
		work <- i
	}
	close(work)
	wg.Wait()
	wall := time.Since(start)
	reqs := cnt.total() - reqs0
	seen := map[netip.Addr]int{}
	var adds []time.Duration
	for _, r := range results {
		if r.m != nil {
			seen[r.addr]++
			adds = append(adds, r.took)
		}
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	flushAll(b, ms...)
	var dels []time.Duration
	for _, r := range results {
		if r.m == nil {
			continue
		}
		t0 := time.Now()
		if err := r.m.Del(testbed.Ctx(b), req("DEL", c, r.cid, pod{"default", r.cid, r.cid})); err != nil {
			b.Errorf("DEL %s: %v", r.cid, err)
		}
		dels = append(dels, time.Since(t0))
	}
	flushAll(b, ms...)
	leaked := 0
	var nblocks int
	l, err := api.List(testbed.Ctx(b), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for _, blk := range l.Items {
		if blk.Spec.Network == networkNameOf(c) {
			nblocks++
			leaked += len(blk.Spec.Allocations)
		}
	}
	for _, m := range ms {
		m.mu.Lock()
		leaked += len(m.ledger.recs)
		m.mu.Unlock()
	}
	fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.3f\t%d\t%d\t%d\t%d\t\n", name, len(adds), retried.Load(),
		float64(len(adds))/wall.Seconds(), ms50(adds, 50), ms50(adds, 99), ms50(dels, 50),
		float64(reqs)/float64(max(len(adds), 1)), nblocks, obs.borrowed(), dups, leaked)
	if dups > 0 || leaked > 0 {
		b.Errorf("%s: %d duplicates, %d leaked", name, dups, leaked)
	}
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil || len(data) < 14 {
		return "?"
	}
	return string(data[:14])
}

// warmUp writes one IPBlock and deletes it: a kube-apiserver's first write of a resource of
// a CRD takes it about two seconds here (it builds the resource's write path once), which
// a cluster pays once in its life, not per node or per pod.
func warmUp(b *testing.B, api blocks.Client) {
	blk := &blocks.IPBlock{ObjectMeta: metav1.ObjectMeta{Name: "warm-up"},
		Spec: blocks.IPBlockSpec{Pool: "warm-up/v4", CIDR: "192.0.2.0/26"}}
	if _, err := api.Create(testbed.Ctx(b), blk); err != nil {
		b.Fatal(err)
	}
	if err := api.Delete(testbed.Ctx(b), "warm-up", "", ""); err != nil {
		b.Fatal(err)
	}
}

// ms50 is the p-th percentile of ds in milliseconds.
func ms50(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[(len(s)-1)*p/100]) / float64(time.Millisecond)
}

func networkNameOf(c []byte) string {
	r, err := decode(req("ADD", c, "x", pod{}))
	if err != nil {
		return ""
	}
	return networkLabel(r)
}

// countObs counts borrowed allocations.
type countObs struct {
	noObserver
	mu sync.Mutex
	n  int
}

func (o *countObs) IPAMAllocated(borrowed bool) {
	if borrowed {
		o.mu.Lock()
		o.n++
		o.mu.Unlock()
	}
}

func (o *countObs) borrowed() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}
