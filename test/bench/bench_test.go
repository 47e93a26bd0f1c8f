// Package bench measures multinet on a simulated node (real apiserver, real multinetd, real
// plugins, pods as network namespaces) against calling the same delegate plugins directly,
// and prints one table. Run it with `make bench` (root needed). It is a benchmark, not a
// timed test: it asserts nothing about speed.
package bench

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/multinet/multinet/internal/netconf"
	"github.com/multinet/multinet/internal/testbed"
)

const namespace = "bench"

// daemonFlags are extra multinetd flags, e.g. -daemon-flags=--sync-checkpoints=false.
var daemonFlags = flag.String("daemon-flags", "", "extra multinetd flags, space-separated")

// daemonProfile is where BenchmarkCore saves multinetd's CPU profile under the throughput load.
var daemonProfile = flag.String("daemon-cpuprofile", filepath.Join(os.TempDir(), "multinetd-cpu.pprof"),
	"BenchmarkCore: write multinetd's CPU profile under the throughput load here (read it with go tool pprof)")

// bed is the node under measurement plus the direct path to the same delegates.
type bed struct {
	*testbed.Node
	metrics string
	flags   []string           // multinetd's flags, without --profiling
	pprof   string             // the daemon's /debug/pprof/, once withProfiling restarted it
	last    map[string]float64 // the daemon's duration histogram at the last reading
	direct  *libcni.CNIConfig
	nets    []*libcni.NetworkConfigList // the secondary networks' conflists, as the NADs hold them
	cluster *libcni.NetworkConfigList
}

func newBed(b *testing.B) *bed {
	testbed.RequireRoot(b)
	cp := testbed.StartControlPlane(b)
	addr := freeAddr(b)
	flags := append([]string{"--metrics-address", addr, "--log-level", "warn"}, strings.Fields(*daemonFlags)...)
	n := testbed.NewNode(b, cp, flags...)
	cp.CreateNamespace(b, namespace)
	bd := &bed{Node: n, flags: flags, metrics: "http://" + addr + "/metrics", pprof: "http://" + addr + "/debug/pprof/",
		direct: libcni.NewCNIConfigWithCacheDir([]string{n.BinDir}, b.TempDir(), nil)}
	for i := 1; i <= 3; i++ {
		name, br := fmt.Sprintf("net%d", i), fmt.Sprintf("mb%d%s", i, n.ID)
		b.Cleanup(func() { testbed.DeleteLink(br) })
		conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"bridge","bridge":%q,"ipam":{"type":"host-local",`+
			`"dataDir":%q,"ranges":[[{"subnet":"10.%d.0.0/16"}]]}}`, name, br, n.IPAMDir, 60+i)
		cp.CreateNAD(b, namespace, name, conf)
		list, err := netconf.Parse([]byte(conf), name)
		if err != nil {
			b.Fatal(err)
		}
		bd.nets = append(bd.nets, list)
	}
	list, err := libcni.ConfListFromFile(filepath.Join(n.ConfDir, "10-cluster.conflist"))
	if err != nil {
		b.Fatal(err)
	}
	bd.cluster = list
	return bd
}

// withProfiling restarts multinetd with --profiling. The daemon runs without it until then,
// as it does in production: profiling keeps heap-profile sampling on, which takes memory.
// A round of pods then warms the new daemon up (its caches, and the pages of its binary it
// gave back when it became ready), which would otherwise count in what it profiles next.
func (bd *bed) withProfiling(b *testing.B) {
	bd.Stop()
	bd.Start(b, append(bd.flags, "--profiling")...)
	bd.last = nil
	warm := bd.pods(b, "warm", 32, 1)
	parallel(warm, 16, func(sb *testbed.Sandbox) { bd.MustAdd(b, sb); bd.MustDel(b, sb) })
}

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func annotation(k int) map[string]string {
	if k == 0 {
		return nil
	}
	names := []string{"net1", "net2", "net3"}[:k]
	return map[string]string{"k8s.v1.cni.cncf.io/networks": strings.Join(names, ",")}
}

// pods creates count pods with k secondary networks and a netns each.
func (bd *bed) pods(b *testing.B, prefix string, count, k int) []*testbed.Sandbox {
	out := make([]*testbed.Sandbox, count)
	for i := range out {
		out[i] = bd.NewSandbox(b, namespace, fmt.Sprintf("%s-%d", prefix, i), annotation(k))
	}
	return out
}

// multinetAddDel is one pod's ADD then DEL through the runtime path.
func (bd *bed) multinetAddDel(b *testing.B, sb *testbed.Sandbox) time.Duration {
	start := time.Now()
	bd.MustAdd(b, sb)
	bd.MustDel(b, sb)
	return time.Since(start)
}

// directAddDel calls the same delegates as multinet would, without it.
func (bd *bed) directAddDel(b *testing.B, sb *testbed.Sandbox, k int) time.Duration {
	add, del := bd.directApart(b, sb, k, 0)
	return add + del
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// parallel runs f over every sandbox with c workers and returns the wall time.
func parallel(sbs []*testbed.Sandbox, c int, f func(*testbed.Sandbox)) time.Duration {
	work := make(chan *testbed.Sandbox)
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sb := range work {
				f(sb)
			}
		}()
	}
	for _, sb := range sbs {
		work <- sb
	}
	close(work)
	wg.Wait()
	return time.Since(start)
}

// rssSplit is the RSS of pid with its anonymous part (heap, stacks) and its file part (the
// binary's pages, which the kernel can drop and read again).
func rssSplit(b *testing.B, pid int) string {
	return fmt.Sprintf("%.1f MiB (anon %.1f, file %.1f)", rss(b, pid, "VmRSS"), rss(b, pid, "RssAnon"), rss(b, pid, "RssFile"))
}

// rss reads a /proc/PID/status field (VmRSS, VmHWM) in MiB.
func rss(b *testing.B, pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			var kb float64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), "kB"), &kb); err != nil {
				b.Fatalf("/proc/%d/status %s: %v", pid, field, err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("%s not in /proc/%d/status", field, pid)
	return 0
}
