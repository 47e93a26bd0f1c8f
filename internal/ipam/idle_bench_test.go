package ipam

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/multinet/multinet/internal/coreapi"
	"github.com/multinet/multinet/internal/ipam/blocks"
	"github.com/multinet/multinet/internal/testbed"
)

// idlePeriod is the reconcile period of BenchmarkIPAMIdleAPI (multinetd's is a minute), and
// idlePeriods how many of them it counts.
const (
	idlePeriod  = time.Second
	idlePeriods = 5
)

// BenchmarkIPAMIdleAPI prints what idle nodes ask the API server: N nodes (N Node objects),
// each with one pod holding a multinet-ipam address, so each owns one IPBlock and every
// reconciler sees N-1 blocks of other nodes. Their managers run in one process against a
// real kube-apiserver, each with its own clients, reconciling every second. Every HTTP
// request of a node's clients is counted (LIST and WATCH starts of its informers too):
// those before the window (the ADD, the informers' start) once, then those of idlePeriods
// idle periods. The reconciler runs once a period, so requests per period are requests per
// minute at multinetd's one-minute interval. Not in the window: client-go re-opens each
// watch every 5 to 10 minutes, one request each.
func BenchmarkIPAMIdleAPI(b *testing.B) {
	for range b.N {
		cp := testbed.StartControlPlane(b)
		api, err := blocks.NewClient(cp.Config)
		if err != nil {
			b.Fatal(err)
		}
		warmUp(b, api)
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "multinet-ipam idle nodes, reconcile every %s, %d periods counted (load average %s)\n",
			idlePeriod, idlePeriods, loadAverage())
		fmt.Fprintln(tw, "nodes\tstart req/node\tof which, per node\tidle req/node/period\t= req/node/min at 1m\tof which, per node and period\t")
		for _, n := range []int{10, 50, 100} {
			idleRow(b, tw, cp, api, n)
		}
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
		fmt.Println("(not counted: client-go re-opens each of a node's two watches every 5 to 10 minutes, ~0.3 requests a minute)")
	}
}

// idleRow runs n idle nodes and prints their row; their Nodes and blocks are deleted after.
func idleRow(b *testing.B, tw *tabwriter.Writer, cp *testbed.ControlPlane, api blocks.Client, n int) {
	network := fmt.Sprintf("idle-%d", n)
	c := conf(network, fmt.Sprintf(`"range":"10.%d.0.0/16","network_name":%q`, 200+n/10, network))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ms := make([]*Manager, n)
	counters := make([]*apiCounter, n)
	ps := &pods{}
	for i := range n {
		name := fmt.Sprintf("%s-%03d", network, i)
		if _, err := cp.Client.CoreV1().Nodes().Create(testbed.Ctx(b), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}},
			metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		ps.set("default", name, "u-"+name, "")
		ms[i], counters[i] = idleNode(ctx, b, cp.Config, name, ps)
	}
	defer deleteIdle(b, cp, api, network, ms)
	addOnEach(b, ms, c)
	flushAll(b, ms...)
	waitSeen(b, ms, network, n)
	time.Sleep(2 * idlePeriod) // the reconcilers' first questions start what they cache
	before := make([]map[string]int, n)
	for i, cnt := range counters {
		before[i] = cnt.snapshot()
	}
	time.Sleep(idlePeriods * idlePeriod)
	start, idle := map[string]int{}, map[string]int{}
	for i, cnt := range counters {
		for k, v := range cnt.snapshot() {
			idle[k] += v - before[i][k]
			start[k] += before[i][k]
		}
	}
	perPeriod := float64(sum(idle)) / float64(n) / idlePeriods
	fmt.Fprintf(tw, "%d\t%.1f\t%s\t%.2f\t%.2f\t%s\t\n", n, float64(sum(start))/float64(n), kinds(start, n),
		perPeriod, perPeriod, kinds(idle, n*idlePeriods))
	if perPeriod > 2 {
		b.Errorf("%d idle nodes: %.2f API requests per node per reconcile period, want at most 2", n, perPeriod)
	}
}

func sum(counts map[string]int) int {
	n := 0
	for _, v := range counts {
		n += v
	}
	return n
}

// kinds lists the counts divided by per, by kind of request.
func kinds(counts map[string]int, per int) string {
	var parts []string
	for k, v := range counts {
		if v > 0 {
			parts = append(parts, fmt.Sprintf("%.3g %s", float64(v)/float64(per), k))
		}
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// idleNode starts the manager of node name with its own clients, whose requests it counts.
func idleNode(ctx context.Context, b *testing.B, admin *rest.Config, name string, ps *pods) (*Manager, *apiCounter) {
	cnt := &apiCounter{n: map[string]int{}}
	cfg := rest.CopyConfig(admin)
	cfg.QPS, cfg.Burst = 50, 100 // as multinetd's
	cfg.Wrap(cnt.wrap)
	api, err := blocks.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	core, err := coreapi.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	set := Settings{ReclaimInterval: idlePeriod, NoSync: true}
	m, err := New(name, b.TempDir(), set, Deps{API: api, Pods: ps, Nodes: NewKubeNodes(ctx, meta, core), Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	m.Start(ctx)
	return m, cnt
}

// addOnEach gives each node one pod with an address, ten ADDs at a time.
func addOnEach(b *testing.B, ms []*Manager, c []byte) {
	var wg sync.WaitGroup
	work := make(chan *Manager)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				if _, err := m.Add(testbed.Ctx(b), req("ADD", c, "c-"+m.node, pod{"default", m.node, "u-" + m.node})); err != nil {
					b.Errorf("ADD on %s: %v", m.node, err)
				}
			}
		}()
	}
	for _, m := range ms {
		work <- m
	}
	close(work)
	wg.Wait()
}

// waitSeen waits until every manager's informer holds the n blocks of network.
func waitSeen(b *testing.B, ms []*Manager, network string, n int) {
	for end := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		all := true
		for _, m := range ms {
			seen := 0
			for _, o := range m.inf.GetStore().List() {
				if blk, ok := o.(*blocks.IPBlock); ok && blk.Spec.Network == network {
					seen++
				}
			}
			all = all && seen == n
		}
		if all {
			return
		}
		if time.Now().After(end) {
			b.Fatalf("the managers' informers do not hold the %d blocks of %s after a minute", n, network)
		}
	}
}

// deleteIdle stops nothing (the caller cancels) and deletes the row's blocks and Nodes.
func deleteIdle(b *testing.B, cp *testbed.ControlPlane, api blocks.Client, network string, ms []*Manager) {
	l, err := api.List(testbed.Ctx(b), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for _, blk := range l.Items {
		if blk.Spec.Network == network {
			if err := api.Delete(testbed.Ctx(b), blk.Name, "", ""); err != nil {
				b.Error(err)
			}
		}
	}
	for _, m := range ms {
		if err := cp.Client.CoreV1().Nodes().Delete(testbed.Ctx(b), m.node, metav1.DeleteOptions{}); err != nil {
			b.Error(err)
		}
	}
}

// apiCounter counts one node's HTTP requests to the API server by verb and resource
// ("get nodes", "watch ipblocks").
type apiCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *apiCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		c.mu.Lock()
		c.n[requestKind(r)]++
		c.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

func (c *apiCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// requestKind names a request to the API server by its verb and resource: the path is
// /api/v1/[namespaces/NS/]RESOURCE[/NAME] or /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME].
func requestKind(r *http.Request) string {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) > 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) > 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return strings.ToLower(r.Method) + " " + r.URL.Path
	}
	if len(parts) > 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	named := len(parts) > 1
	verb := map[string]string{http.MethodPost: "create", http.MethodPut: "update", http.MethodDelete: "delete",
		http.MethodPatch: "patch"}[r.Method]
	switch {
	case verb != "":
	case r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1":
		verb = "watch"
	case named:
		verb = "get"
	default:
		verb = "list"
	}
	return verb + " " + parts[0]
}
