package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/multinet/multinet/internal/testbed"
)

// benchSizes are the numbers of pods created at once.
var benchSizes = []int{1, 10, 30}

// BenchmarkRealNodePodStartup measures pod create -> Running on the real node for 1, 10 and
// 30 pods created at once: first with the cluster network alone (multinet not installed:
// containerd runs bridge itself), then with multinet installed and 3 secondary networks per
// pod. The ratio is multinet's cost on a real node. Run with -benchtime 1x (make bench).
func BenchmarkRealNodePodStartup(b *testing.B) {
	testbed.RequireRoot(b)
	c := testbed.StartCluster(b)
	c.CreateNamespace(b, "bench")
	e := &env{c: c}
	nets := []network{e.createNetwork(b, "bench", "b1", 31), e.createNetwork(b, "bench", "b2", 32), e.createNetwork(b, "bench", "b3", 33)}
	measureStartup(b, c, 1, nil) // warm-up: the first pod also loads the images' snapshots
	alone := map[int]startup{}
	for _, n := range benchSizes {
		alone[n] = measureStartup(b, c, n, nil)
	}
	c.DeployMultinet(b, overlay)
	measureStartup(b, c, 1, nets) // warm-up: the first ADD creates the three bridges
	fmt.Printf("\npod create -> Running on one real node (kubelet + containerd), pods created at once\n")
	fmt.Printf("%-6s | %-28s | %-28s | %s\n", "pods", "cluster network alone", "multinet, 3 secondary nets", "ratio (all Running)")
	fmt.Printf("%-6s | %-28s | %-28s | %s\n", "", "all Running / median pod", "all Running / median pod", "")
	for _, n := range benchSizes {
		with := measureStartup(b, c, n, nets)
		a := alone[n]
		fmt.Printf("%-6d | %-28s | %-28s | %.2fx\n", n, a, with, with.all.Seconds()/a.all.Seconds())
		b.ReportMetric(with.all.Seconds()/a.all.Seconds(), fmt.Sprintf("ratio-%dpods", n))
		b.ReportMetric(with.all.Seconds(), fmt.Sprintf("s-multinet-%dpods", n))
		b.ReportMetric(a.all.Seconds(), fmt.Sprintf("s-alone-%dpods", n))
	}
}

// startup is the time until every pod was Running, and the median pod's.
type startup struct{ all, median time.Duration }

func (s startup) String() string {
	return fmt.Sprintf("%s / %s", s.all.Round(10*time.Millisecond), s.median.Round(10*time.Millisecond))
}

// measureStartup creates n pods at once (with the networks, if any), waits until all are
// Running, and deletes them (waiting until they are gone, so the next round starts clean).
func measureStartup(b *testing.B, c *testbed.Cluster, n int, nets []network) startup {
	b.Helper()
	start := time.Now()
	for i := range n {
		c.CreatePodObject(b, testbed.BusyboxPod("bench", fmt.Sprintf("p%d", i), annotation(nets)))
	}
	running := map[string]time.Duration{}
	err := wait.PollUntilContextTimeout(b.Context(), 100*time.Millisecond, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := c.Client.CoreV1().Pods("bench").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, p := range pods.Items {
			if _, seen := running[p.Name]; !seen && p.Status.Phase == corev1.PodRunning {
				running[p.Name] = time.Since(start)
			}
		}
		return len(running) == n, nil
	})
	if err != nil {
		b.Fatalf("%d of %d pods Running: %v", len(running), n, err)
	}
	all := time.Since(start)
	var times []time.Duration
	for _, d := range running {
		times = append(times, d)
	}
	slices.Sort(times)
	c.RunKubectl(b, "-n", "bench", "delete", "pods", "--all", "--wait=true", "--timeout=5m")
	return startup{all: all, median: times[len(times)/2]}
}
