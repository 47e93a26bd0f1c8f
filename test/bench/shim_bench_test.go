package bench

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/multinet/multinet/internal/testbed"
)

// shimBinary measures another build of the shim (an older commit's) in place of this tree's.
var shimBinary = flag.String("shim", "", "BenchmarkShimExec: measure this multinet binary instead of building cmd/multinet")

// shimRuns is how many times each process is exec'd; the table shows the median.
const shimRuns = 20

// minimalGo is the smallest useful Go program: it copies stdin to stdout.
const minimalGo = `package main

import (
	"io"
	"os"
)

func main() { _, _ = io.Copy(os.Stdout, os.Stdin) }
`

// BenchmarkShimExec prints what one exec of the shim costs in CPU (user + system, from the
// child's rusage), next to the smallest static Go program and /bin/true: the runtime execs
// the shim once per verb per pod sandbox. Goal (issue 11): the shim within 1.2x the minimal
// Go program.
func BenchmarkShimExec(b *testing.B) {
	for range b.N {
		shim := *shimBinary
		if shim == "" {
			shim = filepath.Join(testbed.Binaries(b), "multinet") // built as `make build` builds it
		}
		minimal := buildMinimalGo(b)
		sock := fixedDaemon(b)
		add := []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=bench1234", "CNI_NETNS=/run/netns/bench-none",
			"CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin", "CNI_ARGS=K8S_POD_NAMESPACE=bench;K8S_POD_NAME=p"}
		conf := `{"cniVersion":"1.0.0","name":"multinet","type":"multinet","socket":"` + sock + `"}`
		rows := []struct {
			label, metric string
			cmd           func() *exec.Cmd
		}{
			{"minimal static Go program (stdin to stdout)", "minimal-go", func() *exec.Cmd { return child(minimal, nil, conf) }},
			{"/bin/true", "true", func() *exec.Cmd { return child("/bin/true", nil, "") }},
			{"multinet VERSION", "shim-version", func() *exec.Cmd { return child(shim, []string{"CNI_COMMAND=VERSION"}, conf) }},
			{"multinet ADD (round trip to a stand-in daemon)", "shim-add", func() *exec.Cmd { return child(shim, add, conf) }},
		}
		cpu := medianCPU(b, len(rows), func(i int) *exec.Cmd { return rows[i].cmd() })
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "process (exec'd %d times)\tmedian CPU\tvs minimal Go\t\n", shimRuns)
		for i, r := range rows {
			fmt.Fprintf(tw, "%s\t%.2f ms\t%.2fx\t\n", r.label, cpu[i], cpu[i]/cpu[0])
			b.ReportMetric(cpu[i], "cpu-ms-"+r.metric)
		}
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// child is the process the runtime would start: env and stdin only.
func child(path string, env []string, stdin string) *exec.Cmd {
	c := exec.Command(path)
	c.Env = env
	c.Stdin = strings.NewReader(stdin)
	c.Stdout = io.Discard
	return c
}

// medianCPU execs each of n commands shimRuns times, in turns so that a change in the
// machine's load falls on all of them alike, after one warm-up exec each, and returns each
// one's median user+system CPU in ms.
func medianCPU(b *testing.B, n int, cmd func(i int) *exec.Cmd) []float64 {
	cpu := make([][]float64, n)
	for run := range shimRuns + 1 {
		for i := range n {
			c := cmd(i)
			if err := c.Run(); err != nil {
				b.Fatalf("%s: %v", c.Path, err)
			}
			ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage)
			if !ok {
				b.Fatal("no rusage for a child process")
			}
			if run > 0 {
				cpu[i] = append(cpu[i], float64(ru.Utime.Nano()+ru.Stime.Nano())/1e6)
			}
		}
	}
	medians := make([]float64, n)
	for i, c := range cpu {
		slices.Sort(c)
		medians[i] = c[len(c)/2]
	}
	return medians
}

// buildMinimalGo builds minimalGo statically (CGO_ENABLED=0) in a temp dir.
func buildMinimalGo(b *testing.B) string {
	dir := b.TempDir()
	for name, text := range map[string]string{"main.go": minimalGo, "go.mod": "module minimal\n\ngo 1.22\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", "minimal", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build the minimal Go program: %v\n%s", err, out)
	}
	return filepath.Join(dir, "minimal")
}

// fixedDaemon stands in for multinetd on a unix socket: every request gets one fixed ADD result.
func fixedDaemon(b *testing.B) string {
	sock := filepath.Join(b.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	const reply = `{"result":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],` +
		`"ips":[{"address":"10.1.2.3/24","gateway":"10.1.2.1","interface":0}]}}`
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, reply)
	})}
	go func() { _ = srv.Serve(l) }()
	b.Cleanup(func() { _ = srv.Close() })
	return sock
}
