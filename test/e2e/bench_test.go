package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/multinet/multinet/internal/testbed"
)

// benchSizes are the numbers of pods created at once.
var benchSizes = []int{1, 10, 30}

// BenchmarkRealNodePodStartup measures pod create -> Running on the real node for 1, 10 and
// 30 pods created at once: first with the cluster network alone (multinet not installed:
// containerd runs bridge itself), then with multinet installed and 3 secondary networks per
// pod. The ratio is multinet's cost on a real node. Then RunPodSandbox alone, from
// containerd's log, for pods created one at a time: the cluster network alone, multinet with
// no secondary network, and with 3. Run with -benchtime 1x (make bench).
func BenchmarkRealNodePodStartup(b *testing.B) {
	testbed.RequireRoot(b)
	c := testbed.StartCluster(b)
	c.CreateNamespace(b, "bench")
	e := &env{c: c}
	nets := []network{e.createNetwork(b, "bench", "b1", 31), e.createNetwork(b, "bench", "b2", 32), e.createNetwork(b, "bench", "b3", 33)}
	measureStartup(b, c, 1, nil) // warm-up: the first pod also loads the images' snapshots
	sandboxAlone, _ := measureSandboxes(b, c, benchPod(nil))
	alone := map[int]startup{}
	for _, n := range benchSizes {
		alone[n] = measureStartup(b, c, n, nil)
	}
	c.DeployMultinet(b, overlay)
	measureStartup(b, c, 1, nets) // warm-up: the first ADD creates the three bridges
	sandboxNoSecondary, _ := measureSandboxes(b, c, benchPod(nil))
	sandboxWithNets, _ := measureSandboxes(b, c, benchPod(nets))
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
	fmt.Printf("\nRunPodSandbox p50 / p99 from containerd's log (%d pods, one at a time)\n", sandboxPods)
	fmt.Printf("%-28s | %-28s | %-28s | %s\n", "cluster network alone", "multinet, no secondary net", "multinet, 3 secondary nets", "multinet's cost, no secondary, p50")
	over := percentile(sandboxNoSecondary, 0.5) - percentile(sandboxAlone, 0.5)
	fmt.Printf("%-28s | %-28s | %-28s | %+.1f ms\n", sandboxes(sandboxAlone), sandboxes(sandboxNoSecondary), sandboxes(sandboxWithNets), ms(over))
	b.ReportMetric(ms(over), "sandbox-ms-over-alone")
}

// sandboxPods is how many pods measureSandboxes creates, one after another, after
// sandboxSettle (the node finishing the previous round's teardown).
const (
	sandboxPods   = 12
	sandboxSettle = 10 * time.Second
)

// measureSandboxes creates sandboxPods pods of namespace bench, made by pod, one at a time
// (each Running before the next), and returns their RunPodSandbox times from containerd's
// log (the runtime's own timestamps, without the kubelet's relist period that create ->
// Running has), and their create -> Running times as this client saw them.
func measureSandboxes(b *testing.B, c *testbed.Cluster, pod func(name string) *corev1.Pod) (sandbox, running []time.Duration) {
	b.Helper()
	time.Sleep(sandboxSettle)
	logStart := fileSize(b, c.ContainerdLog())
	for i := range sandboxPods {
		start := time.Now()
		c.CreatePodObject(b, pod(fmt.Sprintf("s%d", i)))
		c.WaitPodRunning(b, "bench", fmt.Sprintf("s%d", i), 2*time.Minute)
		running = append(running, time.Since(start))
	}
	sandbox = runPodSandboxTimes(b, c.ContainerdLog(), logStart, "bench")
	if len(sandbox) != sandboxPods {
		b.Fatalf("containerd logged %d RunPodSandbox calls in namespace bench for %d pods", len(sandbox), sandboxPods)
	}
	c.RunKubectl(b, "-n", "bench", "delete", "pods", "--all", "--wait=true", "--timeout=5m")
	return sandbox, running
}

// benchPod makes busybox pods of namespace bench asking for the networks.
func benchPod(nets []network) func(name string) *corev1.Pod {
	return func(name string) *corev1.Pod { return testbed.BusyboxPod("bench", name, annotation(nets)) }
}

func sandboxes(ds []time.Duration) string {
	return fmt.Sprintf("%.1f / %.1f ms", ms(percentile(ds, 0.5)), ms(percentile(ds, 0.99)))
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
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

func fileSize(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// sandboxLines match containerd's log line at the start and at the successful end of a
// RunPodSandbox call, with the groups time, pod UID, namespace and " returns sandbox id" (at
// the end only). containerd 1.7 prints the metadata as a Go struct:
//
//	time="..." level=info msg="RunPodSandbox for &PodSandboxMetadata{Name:p0,Uid:...,Namespace:bench,...}[ returns sandbox id \"...\"]"
//
// containerd 2.4 in protobuf text form:
//
//	time="..." level=info msg="RunPodSandbox for name:\"p0\"  uid:\"...\"  namespace:\"bench\"[ returns sandbox id \"...\"]"
var sandboxLines = []*regexp.Regexp{
	regexp.MustCompile(`^time="([^"]+)".*msg="RunPodSandbox for &PodSandboxMetadata\{Name:[^,]*,Uid:([^,]+),Namespace:([^,]+),.*?\}( returns sandbox id)?`),
	regexp.MustCompile(`^time="([^"]+)".*msg="RunPodSandbox for name:\\"[^\\]*\\"\s+uid:\\"([^\\]+)\\"\s+namespace:\\"([^\\]+)\\"(?:\s+attempt:\d+)?( returns sandbox id)?`),
}

// sandboxLine returns the groups of line's match (see sandboxLines), nil when none matches.
func sandboxLine(line string) []string {
	for _, re := range sandboxLines {
		if m := re.FindStringSubmatch(line); m != nil {
			return m
		}
	}
	return nil
}

// runPodSandboxTimes reads containerd's log from offset on and returns how long each
// successful RunPodSandbox of a pod in namespace took, from containerd's own timestamps.
func runPodSandboxTimes(b *testing.B, path string, offset int64, namespace string) []time.Duration {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		b.Fatal(err)
	}
	started := map[string]time.Time{}
	var out []time.Duration
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := sandboxLine(sc.Text())
		if m == nil || m[3] != namespace {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			b.Fatalf("containerd log time %q: %v", m[1], err)
		}
		if m[4] == "" {
			started[m[2]] = at
		} else if s, ok := started[m[2]]; ok {
			out = append(out, at.Sub(s))
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkRealNodeDRASandbox compares, with multinet installed, pods created one at a time
// with one secondary network: a bridge network, and a device-backed one (a ResourceClaim from
// a template is allocated a host veth that the NIC driver in multinetd publishes; multinetd
// resolves the claim and host-device moves the veth into the pod). Both take host-local
// addresses. RunPodSandbox (containerd's log) holds multinetd's part: for the device, reading
// the claim and its slices, host-device, and the claim's status written. The scheduler's
// allocation and the kubelet's prepare come before it, so create -> Running (polled every
// 200 ms) is shown too.
func BenchmarkRealNodeDRASandbox(b *testing.B) {
	testbed.RequireRoot(b)
	c := testbed.StartCluster(b)
	c.DeployMultinet(b, overlay)
	c.CreateNamespace(b, "bench")
	e := &env{c: c}
	bridge := benchPod([]network{e.createNetwork(b, "bench", "b1", 31)})
	var nicNames []string
	for i := range sandboxPods/2 + 1 { // a device for each pod, both ends of each pair published
		a, peer := fmt.Sprintf("mnnicb%da", i), fmt.Sprintf("mnnicb%db", i)
		vethPair(b, a, peer)
		nicNames = append(nicNames, a, peer)
	}
	e.waitPublished(b, nicNames...)
	conf := `{"cniVersion":"1.0.0","name":"bdev","plugins":[{"type":"host-device","ipam":{"type":"host-local","ranges":[[{"subnet":"10.10.35.0/24"}]]}}]}`
	e.createAnnotatedNAD(b, "bench", "bdev", conf, map[string]string{resourceNameAnnotation: nicResource})
	e.createClaimTemplate(b, "bench", "nic", "")
	device := func(name string) *corev1.Pod {
		p := benchPod([]network{{namespace: "bench", name: "bdev"}})(name)
		p.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "nic", ResourceClaimTemplateName: ptr.To("nic")}}
		return p
	}
	for _, p := range []*corev1.Pod{bridge("warm-0"), device("warm-1")} { // the bridge's creation, the first claim
		c.CreatePodObject(b, p)
		c.WaitPodRunning(b, "bench", p.Name, 3*time.Minute)
	}
	c.RunKubectl(b, "-n", "bench", "delete", "pods", "--all", "--wait=true", "--timeout=5m")
	bridgeSandbox, bridgeRunning := measureSandboxes(b, c, bridge)
	deviceSandbox, deviceRunning := measureSandboxes(b, c, device)
	fmt.Printf("\nOne secondary network, %d pods one at a time: p50 / p99\n", sandboxPods)
	fmt.Printf("%-44s | %-24s | %s\n", "secondary network", "RunPodSandbox", "create -> Running")
	fmt.Printf("%-44s | %-24s | %s\n", "bridge, host-local", sandboxes(bridgeSandbox), sandboxes(bridgeRunning))
	fmt.Printf("%-44s | %-24s | %s\n", "device of a ResourceClaim, host-device", sandboxes(deviceSandbox), sandboxes(deviceRunning))
	sandboxOver := percentile(deviceSandbox, 0.5) - percentile(bridgeSandbox, 0.5)
	runningOver := percentile(deviceRunning, 0.5) - percentile(bridgeRunning, 0.5)
	fmt.Printf("device vs bridge, p50: RunPodSandbox %+.1f ms, create -> Running %+.1f ms\n", ms(sandboxOver), ms(runningOver))
	b.ReportMetric(ms(percentile(deviceSandbox, 0.5)), "sandbox-ms-device-p50")
	b.ReportMetric(ms(percentile(bridgeSandbox, 0.5)), "sandbox-ms-bridge-p50")
	b.ReportMetric(ms(sandboxOver), "sandbox-ms-device-over-bridge")
}
