package policy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/spec"
	"github.com/multinet/multinet/internal/status"
	"github.com/multinet/multinet/internal/testbed"
)

// benchPods and benchPolicies are the node of the target: 100 pods, 50 policies.
const (
	benchPods     = 100
	benchPolicies = 50
	benchChanges  = 40
)

// BenchmarkPolicyChange measures, on a node of 100 sandboxes (real network namespaces, real
// nftables) and 50 policies, the time from a policy event reaching the controller to the
// rules of every sandbox it selects being programmed: a policy that selects all 100 pods is
// changed benchChanges times. It prints p50 and p99, the controller's CPU per event and
// the heap that 1,000 policies take. The API server's watch delivery is not included. Run
// with -benchtime 1x (root needed).
func BenchmarkPolicyChange(b *testing.B) {
	testbed.RequireRoot(b)
	for range b.N {
		c, synced := benchNode(b)
		var took []time.Duration
		cpu := cpuTime()
		for i := range benchChanges {
			start := time.Now()
			c.onPolicy(nil, benchPolicy("all", "", 2000+i))
			for range benchPods {
				<-synced
			}
			took = append(took, time.Since(start))
		}
		cpu = cpuTime() - cpu
		c.queue.ShutDownWithDrain() // before the namespaces go
		heap := policiesHeap(b)
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "policy change -> rules in %d pods (%d policies)\t%s\n", benchPods, benchPolicies+1, percentiles(took))
		fmt.Fprintf(tw, "controller CPU per policy event (%d pods reprogrammed each)\t%v\t\n", benchPods,
			(cpu / benchChanges).Round(time.Microsecond))
		fmt.Fprintf(tw, "heap of 1,000 parsed policies\t%.1f MiB\t\n", float64(heap)/(1<<20))
		_ = tw.Flush()
	}
}

// BenchmarkPeerChange measures, on the node of BenchmarkPolicyChange, the time from a pod
// of another node that the 50 policies take as a peer (app0, an address on bench/blue)
// appearing, or going, to the rules of every sandbox it changes (all 100) being
// programmed: only the elements of address sets change. It prints p50 and p99 of each and
// the controller's CPU per event. Run with -benchtime 1x (root needed).
func BenchmarkPeerChange(b *testing.B) {
	testbed.RequireRoot(b)
	for range b.N {
		c, synced := benchNode(b)
		var added, gone []time.Duration
		cpu := cpuTime()
		for i := range benchChanges {
			peer := benchPeer(i)
			added = append(added, timeEvent(synced, func() { c.onPeer(context.Background(), peer, false) }))
			gone = append(gone, timeEvent(synced, func() { c.onPeer(context.Background(), peer, true) }))
		}
		cpu = cpuTime() - cpu
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "peer pod added -> rules in %d pods (%d policies)\t%s\n", benchPods, benchPolicies, percentiles(added))
		fmt.Fprintf(tw, "peer pod gone -> rules in %d pods (%d policies)\t%s\n", benchPods, benchPolicies, percentiles(gone))
		fmt.Fprintf(tw, "controller CPU per peer event (%d pods reprogrammed each)\t%v\t\n", benchPods,
			(cpu / (2 * benchChanges)).Round(time.Microsecond))
		_ = tw.Flush()
	}
}

// benchPeer is the i-th pod of another node that the bench policies take as a peer.
func benchPeer(i int) *peerPod {
	name := fmt.Sprintf("far%d", i)
	return &peerPod{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name},
		pod: &compile.Pod{Namespace: "bench", Name: name, Labels: map[string]string{"app": "app0"},
			Addresses: map[string][]netip.Addr{"bench/blue": {netip.AddrFrom4([4]byte{10, 71, byte(i), 1})}}}}
}

// timeEvent is the time from event until the rules of benchPods sandboxes are programmed.
func timeEvent(synced chan struct{}, event func()) time.Duration {
	start := time.Now()
	event()
	for range benchPods {
		<-synced
	}
	return time.Since(start)
}

// percentiles is the p50 and p99 of took, which it sorts.
func percentiles(took []time.Duration) string {
	slices.Sort(took)
	return fmt.Sprintf("p50 %v\tp99 %v", took[len(took)/2].Round(time.Microsecond), took[len(took)*99/100].Round(time.Microsecond))
}

// BenchmarkEnforce is the time a pod's ADD spends on its policy: one sandbox with one
// interface that 50 policies of its namespace consider (5 select it, with 20 peers each),
// computed and programmed into a fresh network namespace.
func BenchmarkEnforce(b *testing.B) {
	testbed.RequireRoot(b)
	c, synced := benchNode(b)
	go func() {
		for range synced {
		}
	}()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		rec := benchRecord(b, 10_005+10*i) // app5: selected by 5 policies, nobody's peer
		b.StartTimer()
		if err := c.Enforce(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.queue.ShutDownWithDrain() // each ADD made the others reprogram; let them finish
}

// benchNode is benchController with the 50 policies in force and their rules programmed.
func benchNode(b testing.TB) (*Controller, chan struct{}) {
	c, synced := benchController(b)
	for i := range benchPolicies {
		c.onPolicy(nil, benchPolicy(fmt.Sprintf("p%d", i), fmt.Sprintf("app%d", i%10), 1000+i))
	}
	waitIdle(b, c)
	drain(synced)
	return c, synced
}

// benchController is a running controller on benchPods sandboxes of namespace "bench",
// each with net1 on network bench/blue, and a channel told of each sandbox programmed.
func benchController(b testing.TB) (*Controller, chan struct{}) {
	synced := make(chan struct{}, 100*benchPods)
	c := New(Config{}, Deps{Pods: benchPodSource{}, Firewall: Kernel{}, Events: recordedEvents{},
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Observe: Observer{Sync: func(time.Duration, error) { synced <- struct{}{} }}})
	c.on = true
	close(c.ready)
	c.st.setNamespace("bench", map[string]string{"kubernetes.io/metadata.name": "bench"}, false)
	for range c.cfg.Workers {
		go c.work()
	}
	for i := range benchPods {
		if err := c.Enforce(context.Background(), benchRecord(b, i)); err != nil {
			b.Fatal(err)
		}
	}
	// Before the namespaces go (cleanups run last first): a worker in one keeps it busy.
	b.Cleanup(c.queue.ShutDownWithDrain)
	return c, synced
}

// drain empties ch.
func drain(ch chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// benchRecord is the record of a sandbox with net1 on bench/blue, in a fresh netns.
func benchRecord(b testing.TB, i int) *checkpoint.Sandbox {
	netns := testbed.NewNetNS(b)
	res := fmt.Sprintf(`{"cniVersion":"1.0.0","ips":[{"address":"10.70.%d.%d/16"}]}`, i/250, i%250+1)
	return &checkpoint.Sandbox{ContainerID: fmt.Sprintf("c%d", i), Netns: netns.Path(), PodNamespace: "bench",
		PodName: fmt.Sprintf("pod%d", i), PodUID: fmt.Sprintf("uid%d", i),
		Attachments: []checkpoint.Attachment{
			{Network: "cluster", Default: true, IfName: "eth0", State: checkpoint.Added},
			{Network: "bench/blue", IfName: "net1", State: checkpoint.Added, Result: []byte(res)},
		}}
}

// recordedEvents drops Events (the benchmark posts none unless programming fails).
type recordedEvents struct{}

func (recordedEvents) Warning(status.PodRef, string, string) {}
func (recordedEvents) Normal(status.PodRef, string, string)  {}

// benchPodSource answers every pod with labels app=app<i%10>.
type benchPodSource struct{}

func (benchPodSource) Pod(_ context.Context, namespace, name, uid string) (*corev1.Pod, error) {
	var i int
	_, _ = fmt.Sscanf(name, "pod%d", &i)
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
		Labels: map[string]string{"app": fmt.Sprintf("app%d", i%10)}}}, nil
}

// benchPolicy is a policy for bench/blue selecting app=<app> (every pod when ""), allowing
// ingress from app0 and app1 pods on port and TCP 8000-8100, and egress to 10.0.0.0/8
// except two blocks.
func benchPolicy(name, app string, port int) *spec.MultiNetworkPolicy {
	sel := metav1.LabelSelector{}
	if app != "" {
		sel.MatchLabels = map[string]string{"app": app}
	}
	p := intstr.FromInt32(int32(port))
	lo, end := intstr.FromInt32(8000), int32(8100)
	return &spec.MultiNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name,
			Annotations: map[string]string{spec.PolicyForAnnotation: "blue"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: sel,
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app0"}}},
					{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app1"}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &p}, {Port: &lo, EndPort: &end}},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8",
					Except: []string{"10.1.0.0/16", "10.2.0.0/16"}}}},
			}},
		},
	}
}

// waitIdle waits until the controller's queue is empty and nothing is being processed.
func waitIdle(b testing.TB, c *Controller) {
	deadline := time.Now().Add(time.Minute)
	for c.queue.Len() > 0 {
		if time.Now().After(deadline) {
			b.Fatal("controller queue not drained in a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
}

// cpuTime is this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// policiesHeap is the heap that 1,000 policies parsed into a controller's state take.
func policiesHeap(b *testing.B) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st := newState()
	for i := range 1000 {
		p, err := spec.Parse(benchPolicy(fmt.Sprintf("q%d", i), fmt.Sprintf("app%d", i%10), 1000+i))
		if err != nil {
			b.Fatal(err)
		}
		st.setPolicy("bench/"+p.Name, nil, p)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(st)
	return after.HeapInuse - before.HeapInuse
}
