package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/multinet/multinet/internal/testbed"
)

// floorRuns is how many pods each path of BenchmarkAttachFloor times.
const floorRuns = 30

// BenchmarkAttachFloor prints, for 3 secondary networks, what attaching them in parallel can
// at best gain on this machine: the same plugins called one after another (as the bare rows),
// the same plugins with the secondary networks' chains called concurrently and nothing else
// (the floor of parallel attach, multinet's own work excluded), that again with the plugins'
// GOMAXPROCS=1 (as multinetd runs them by default), and multinet. Beside each, the CPU the
// plugins used per ADD+DEL (their processes' user + system time): when that CPU is more than
// the cores can give in the concurrent part, parallel attach cannot go lower.
// Run with -benchtime 1x.
func BenchmarkAttachFloor(b *testing.B) {
	for range b.N {
		bd := newBed(b)
		const k = 3
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "ADD+DEL, %d secondary, p50 (%d pods; load average %s)\twall\tplugin CPU\tratio to one after another\n", k, floorRuns, loadAverage())
		seq := bd.pods(b, "fl-seq", floorRuns, k)
		con := bd.pods(b, "fl-con", floorRuns, k)
		one := bd.pods(b, "fl-one", floorRuns, k)
		via := bd.pods(b, "fl-mn", floorRuns, k)
		onP := libcni.NewCNIConfigWithCacheDir([]string{bd.BinDir}, b.TempDir(), &gomaxprocsExec{})
		var seqWall, conWall, oneWall, mnWall, seqCPU, conCPU, oneCPU, mnCPU []time.Duration
		for i := range floorRuns {
			c := childCPU(b)
			start := time.Now()
			bd.directAddDel(b, seq[i], k)
			seqWall, seqCPU = append(seqWall, time.Since(start)), append(seqCPU, childCPU(b)-c)

			c = childCPU(b)
			start = time.Now()
			bd.concurrentAddDel(b, bd.direct, con[i], k)
			conWall, conCPU = append(conWall, time.Since(start)), append(conCPU, childCPU(b)-c)

			c = childCPU(b)
			start = time.Now()
			bd.concurrentAddDel(b, onP, one[i], k)
			oneWall, oneCPU = append(oneWall, time.Since(start)), append(oneCPU, childCPU(b)-c)

			c = bd.daemonChildCPU(b)
			start = time.Now()
			bd.MustAdd(b, via[i])
			bd.MustDel(b, via[i])
			mnWall, mnCPU = append(mnWall, time.Since(start)), append(mnCPU, bd.daemonChildCPU(b)-c)
		}
		s := percentile(seqWall, 0.5)
		for _, r := range []struct {
			name      string
			wall, cpu []time.Duration
		}{
			{"plugins one after another (bare)", seqWall, seqCPU},
			{"plugins, secondary chains concurrent (the floor)", conWall, conCPU},
			{"  the same, plugins with GOMAXPROCS=1 (as multinetd runs them)", oneWall, oneCPU},
			{"multinet (parallel attach)", mnWall, mnCPU},
		} {
			w := percentile(r.wall, 0.5)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.2fx\n", r.name, ms(w), ms(percentile(r.cpu, 0.5)), float64(w)/float64(s))
		}
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// concurrentAddDel is directAddDel with the secondary networks' chains run concurrently, the
// default network first on ADD and last on DEL.
func (bd *bed) concurrentAddDel(b *testing.B, cni *libcni.CNIConfig, sb *testbed.Sandbox, k int) {
	ctx := testbed.Ctx(b)
	rt := bd.RuntimeConf(sb)
	if _, err := cni.AddNetworkList(ctx, bd.cluster, rt); err != nil {
		b.Fatalf("direct ADD %s: %v", bd.cluster.Name, err)
	}
	each := func(f func(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error) {
		var wg sync.WaitGroup
		errs := make([]error, k)
		for i, l := range bd.nets[:k] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rt := bd.RuntimeConf(sb)
				rt.IfName = fmt.Sprintf("net%d", i+1)
				errs[i] = f(l, rt)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				b.Fatalf("direct %s: %v", bd.nets[i].Name, err)
			}
		}
	}
	each(func(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
		_, err := cni.AddNetworkList(ctx, l, rt)
		return err
	})
	each(func(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
		return cni.DelNetworkList(ctx, l, rt)
	})
	if err := cni.DelNetworkList(ctx, bd.cluster, rt); err != nil {
		b.Fatalf("direct DEL %s: %v", bd.cluster.Name, err)
	}
}

// childCPU is the user + system time of this process's reaped children: the plugins the
// direct path ran.
func childCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// gomaxprocsExec runs plugins as libcni's own executor does, with GOMAXPROCS=1 added to
// their environment.
type gomaxprocsExec struct {
	invoke.RawExec
	version.PluginDecoder
}

func (e *gomaxprocsExec) ExecPlugin(ctx context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	return e.RawExec.ExecPlugin(ctx, path, stdin, append(environ, "GOMAXPROCS=1"))
}
