package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/multinet/multinet/internal/testbed"
)

const (
	hotplugEdits = 100 // plug and unplug edits of one pod
	hotplugBurst = 30  // pods edited at once
)

// BenchmarkHotplug prints the hot plug table: annotation PATCH -> interface in the pod and
// PATCH -> network-status written, for plugs and unplugs; a burst of pods edited at once;
// API requests per plug; addresses left after the pods are deleted. Run with -benchtime 1x.
func BenchmarkHotplug(b *testing.B) {
	for range b.N {
		bd := newBed(b)
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "hot plug\tp50\tp99\t")
		bd.hotplugLatency(b, tw)
		bd.hotplugBurst(b, tw)
		left := testbed.Allocations(b, bd.IPAMDir)
		fmt.Fprintf(tw, "addresses left after every pod was deleted\t%d\t\t\n", len(left))
		b.ReportMetric(float64(len(left)), "ips-left")
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// edit patches the pod's networks annotation and returns when the patch was sent. It may run
// outside the benchmark's goroutine, so it reports with Errorf.
func (bd *bed) edit(b *testing.B, sb *testbed.Sandbox, value string) time.Time {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{nadv1.NetworkAttachmentAnnot: value}}})
	if err != nil {
		b.Error(err)
	}
	start := time.Now()
	_, err = bd.CP.Client.CoreV1().Pods(namespace).Patch(testbed.Ctx(b), sb.Pod.Name, k8stypes.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		b.Errorf("patch pod %s: %v", sb.Pod.Name, err)
	}
	return start
}

// converged measures, from start, when the pod's netns has ifname (present) or not, and when
// its network-status lists ifname (present) or not. watch must be open before the edit.
func (bd *bed) converged(b *testing.B, sb *testbed.Sandbox, watch <-chan *corev1.Pod, ifname string, present bool, start time.Time) (link, status time.Duration) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for deadline := start.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Microsecond) {
			if hasLink(sb.Netns, ifname) == present {
				link = time.Since(start)
				return
			}
		}
		b.Errorf("pod %s: %s present=%v never reached", sb.Pod.Name, ifname, !present)
	}()
	timeout := time.After(30 * time.Second)
	for status == 0 {
		select {
		case pod := <-watch:
			if strings.Contains(pod.Annotations[nadv1.NetworkStatusAnnot], `"interface":"`+ifname+`"`) == present {
				status = time.Since(start)
			}
		case <-timeout:
			b.Errorf("pod %s: network-status never showed %s present=%v", sb.Pod.Name, ifname, present)
			status = 30 * time.Second
		}
	}
	wg.Wait()
	return link, status
}

func hasLink(netns ns.NetNS, ifname string) bool {
	found := false
	_ = netns.Do(func(ns.NetNS) error {
		_, err := netlinksafe.LinkByName(ifname)
		found = err == nil
		return nil
	})
	return found
}

// watchPod streams the pod's updates from the API until ctx ends.
func (bd *bed) watchPod(b *testing.B, ctx context.Context, name string) <-chan *corev1.Pod {
	w, err := bd.CP.Client.CoreV1().Pods(namespace).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		b.Fatal(err)
	}
	out := make(chan *corev1.Pod, 16)
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if pod, ok := ev.Object.(*corev1.Pod); ok {
				select {
				case out <- pod:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func (bd *bed) hotplugLatency(b *testing.B, tw *tabwriter.Writer) {
	sb := bd.NewSandbox(b, namespace, "hp", annotation(1))
	bd.MustAdd(b, sb)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := bd.watchPod(b, ctx, "hp")
	var plugLink, plugStatus, unplugLink, unplugStatus []time.Duration
	before := bd.apiRequests(b)
	for range hotplugEdits {
		l, s := bd.converged(b, sb, watch, "net2", true, bd.edit(b, sb, "net1,net2"))
		plugLink, plugStatus = append(plugLink, l), append(plugStatus, s)
		l, s = bd.converged(b, sb, watch, "net2", false, bd.edit(b, sb, "net1"))
		unplugLink, unplugStatus = append(unplugLink, l), append(unplugStatus, s)
	}
	time.Sleep(time.Second) // Events are posted asynchronously
	after := bd.apiRequests(b)
	for _, row := range []struct {
		name string
		ds   []time.Duration
	}{{"plug: PATCH -> interface in the pod", plugLink}, {"plug: PATCH -> network-status", plugStatus},
		{"unplug: PATCH -> interface gone", unplugLink}, {"unplug: PATCH -> network-status", unplugStatus}} {
		fmt.Fprintf(tw, "%s (%d edits)\t%s\t%s\t\n", row.name, hotplugEdits, ms(percentile(row.ds, 0.5)), ms(percentile(row.ds, 0.99)))
	}
	b.ReportMetric(float64(percentile(plugLink, 0.5))/1e6, "plug-link-ms-p50")
	b.ReportMetric(float64(percentile(plugStatus, 0.5))/1e6, "plug-status-ms-p50")
	total := 0.0
	for m, v := range after {
		total += v - before[m]
	}
	per := total / (2 * hotplugEdits)
	fmt.Fprintf(tw, "API requests per plug or unplug (PATCH + Event)\t%.2f\t\t\n", per)
	b.ReportMetric(per, "api/plug")
	bd.MustDel(b, sb)
}

// hotplugBurst edits hotplugBurst pods at once and reports when each had its new interface
// and network-status.
func (bd *bed) hotplugBurst(b *testing.B, tw *tabwriter.Writer) {
	sbs := bd.pods(b, "burst", hotplugBurst, 1)
	for _, sb := range sbs {
		bd.MustAdd(b, sb)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watches := make([]<-chan *corev1.Pod, len(sbs))
	for i, sb := range sbs {
		watches[i] = bd.watchPod(b, ctx, sb.Pod.Name)
	}
	links, statuses := make([]time.Duration, len(sbs)), make([]time.Duration, len(sbs))
	var wg sync.WaitGroup
	start := time.Now()
	for i, sb := range sbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bd.edit(b, sb, "net1,net2")
			links[i], statuses[i] = bd.converged(b, sb, watches[i], "net2", true, start)
		}()
	}
	wg.Wait()
	fmt.Fprintf(tw, "%d pods edited at once: -> interface in the pod\t%s\t%s\t\n", hotplugBurst, ms(percentile(links, 0.5)), ms(percentile(links, 0.99)))
	fmt.Fprintf(tw, "%d pods edited at once: -> network-status\t%s\t%s\t\n", hotplugBurst, ms(percentile(statuses, 0.5)), ms(percentile(statuses, 0.99)))
	b.ReportMetric(float64(percentile(statuses, 0.99))/1e6, "burst-status-ms-p99")
	for _, sb := range sbs {
		bd.MustDel(b, sb)
	}
}
