// Package demo is `make demo`: the first thing a new user runs. It builds a simulated
// Kubernetes node on this machine (a real etcd and kube-apiserver, multinetd as a real
// process, the multinet shim invoked through libcni exactly as containerd invokes it, pods as
// network namespaces), attaches three pods to two secondary networks, sends real traffic
// between them and tears everything down, printing each step and its real output.
//
// Run it as root: go test -count=1 -v -run '^TestDemo$' -timeout 15m ./test/demo/
package demo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/multinet/multinet/internal/testbed"
)

// successLine is the last line a successful demo prints.
const successLine = "multinet demo: OK — 3 pods, 2 secondary networks, traffic verified, clean teardown."

// interrupted is set when SIGINT or SIGTERM asks the demo to stop.
var interrupted atomic.Bool

// stopIfInterrupted ends the steps' goroutine once the demo is interrupted, so that it stops
// at its next output or failure while the test goroutine cleans up. Only the steps' goroutine
// calls it (the testbed's cleanups log and report errors, they never call Fatal).
func stopIfInterrupted() {
	if interrupted.Load() {
		runtime.Goexit()
	}
}

// TestDemo runs the demo's steps in a goroutine so that Ctrl-C (SIGINT) or SIGTERM can stop
// it from the test goroutine: the test then fails and t.Cleanup removes everything the demo
// created (pod namespaces, bridges, multinetd, kube-apiserver, etcd).
func TestDemo(t *testing.T) {
	testbed.RequireRoot(t)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	st := &stepT{T: t}
	t.Cleanup(st.flushLogs) // registered first, so it runs last

	done := make(chan struct{})
	go func() {
		defer close(done)
		run(st)
	}()
	select {
	case <-done:
	case sig := <-sigs:
		interrupted.Store(true)
		fmt.Printf("\n%v: stopping the demo, then removing what it created (Ctrl-C again: do not wait)...\n", sig)
		select { // let the step in progress stop, so that nothing is created behind the cleanups
		case <-done:
		case <-sigs:
		case <-time.After(10 * time.Second):
		}
		t.Fatalf("demo interrupted by %v; its pods, bridges and processes are being removed", sig)
	}
}

// run is the whole demo, step by step.
func run(st *stepT) {
	d := &demo{t: st}
	d.startNode()
	d.createNetworks()
	d.attachPods()
	d.pingPods()
	d.teardown()
	d.step(6, "Done")
	fmt.Printf("\n%s\n\n", successLine)
}

// stepT is the testing.T the steps (and the testbed helpers they call) use. A failure ends
// the steps' goroutine quietly once the demo is interrupted. Logs are kept back, so that the
// helpers' t.Log lines do not interleave with the demo's output, and shown only if the demo
// fails for a reason other than an interrupt.
type stepT struct {
	*testing.T
	mu   sync.Mutex
	logs []string
}

func (s *stepT) Fatal(args ...any) {
	s.Helper()
	stopIfInterrupted()
	s.T.Fatal(args...)
}

func (s *stepT) Fatalf(format string, args ...any) {
	s.Helper()
	stopIfInterrupted()
	s.T.Fatalf(format, args...)
}

func (s *stepT) FailNow() {
	s.Helper()
	stopIfInterrupted()
	s.T.FailNow()
}

func (s *stepT) Log(args ...any) { s.keep(fmt.Sprint(args...)) }

func (s *stepT) Logf(format string, args ...any) { s.keep(fmt.Sprintf(format, args...)) }

func (s *stepT) keep(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logs = append(s.logs, msg)
}

// flushLogs shows the kept-back logs when the demo failed by itself.
func (s *stepT) flushLogs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Failed() && !interrupted.Load() {
		for _, msg := range s.logs {
			s.T.Log(msg)
		}
	}
}

// step prints a numbered step header, or ends the steps' goroutine if interrupted.
func (d *demo) step(n int, title string) {
	stopIfInterrupted()
	fmt.Printf("\n==> Step %d/6: %s\n", n, title)
}

// say prints an indented line of explanation.
func say(format string, args ...any) {
	stopIfInterrupted()
	fmt.Printf("    "+format+"\n", args...)
}

// show prints a command's or a file's output, indented under its title.
func show(title, body string) {
	stopIfInterrupted()
	fmt.Printf("    %s\n", title)
	for _, line := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		fmt.Printf("      %s\n", line)
	}
}

// indentJSON returns raw re-indented, or raw unchanged if it is not JSON.
func indentJSON(raw []byte) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}
