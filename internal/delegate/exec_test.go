package delegate

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
)

// plugin writes an executable shell script into a temporary directory.
func plugin(t testing.TB, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plugin")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPipeExec: what libcni's executor does, pipeExec does: stdin in, stdout back (small and
// larger than a pipe), a successful plugin's stderr passed on, a plugin's CNI error kept, its
// stderr quoted when it has no CNI error, a plugin that does not read its stdin, and the
// environment as given, with GOMAXPROCS set when asked.
func TestPipeExec(t *testing.T) {
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, far beyond a pipe
	cases := []struct {
		name, script string
		stdin        []byte
		env          []string
		gomaxprocs   int
		want         string // stdout, or the error's text
		wantErr      bool
		wantCode     uint
		wantStderr   string
	}{
		{name: "echo", script: "cat", stdin: []byte(`{"cniVersion":"1.0.0"}`), want: `{"cniVersion":"1.0.0"}`},
		{name: "stdin beyond a pipe", script: "cat", stdin: big, want: string(big)},
		{name: "stderr of a success passed on", script: "cat; echo note >&2", stdin: []byte("x"), want: "x", wantStderr: "note\n"},
		{name: "environment", script: `printf %s "$CNI_COMMAND"`, env: []string{"CNI_COMMAND=ADD"}, want: "ADD"},
		{name: "GOMAXPROCS set", script: `printf %s "$GOMAXPROCS $CNI_COMMAND"`, env: []string{"CNI_COMMAND=DEL"}, gomaxprocs: 1, want: "1 DEL"},
		{name: "GOMAXPROCS replaced", script: `env | grep -c ^GOMAXPROCS=; printf %s "$GOMAXPROCS"`, env: []string{"GOMAXPROCS=8"}, gomaxprocs: 2, want: "1\n2"},
		{name: "GOMAXPROCS left alone", script: `printf %s "$GOMAXPROCS"`, env: []string{"GOMAXPROCS=8"}, want: "8"},
		{name: "does not read a large stdin", script: "echo '{}'", stdin: big, want: "{}\n"},
		{name: "CNI error", script: `echo '{"cniVersion":"1.0.0","code":7,"msg":"bad conf","details":"d"}'; exit 1`,
			wantErr: true, wantCode: 7, want: "bad conf; d"},
		{name: "stderr only", script: "echo boom >&2; exit 3", wantErr: true, want: `netplugin failed: "boom\n"`},
		{name: "nothing said", script: "exit 4", wantErr: true, want: "netplugin failed with no error message: plugin"},
		{name: "garbled stdout", script: "echo nonsense; exit 1", wantErr: true, want: "error parsing its diagnostic message"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			e := &pipeExec{stderr: &stderr, gomaxprocs: c.gomaxprocs}
			out, err := e.ExecPlugin(ctx, plugin(t, c.script), c.stdin, c.env)
			if c.wantErr {
				var cniErr *types.Error
				if !errors.As(err, &cniErr) || !strings.Contains(cniErr.Error(), c.want) || cniErr.Code != c.wantCode {
					t.Fatalf("error %#v, want a CNI error (code %d) containing %q", err, c.wantCode, c.want)
				}
				return
			}
			if err != nil || string(out) != c.want {
				t.Fatalf("stdout %.80q, %v; want %.80q", out, err, c.want)
			}
			if stderr.String() != c.wantStderr {
				t.Errorf("stderr passed on %q, want %q", stderr.String(), c.wantStderr)
			}
		})
	}
}

// TestPipeExecStopsWithContext: a plugin still running when the request's context ends is
// killed, and the call returns at once saying why.
func TestPipeExecStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := (&pipeExec{}).ExecPlugin(ctx, plugin(t, "exec sleep 30"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("error %v, want the context's deadline named", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("returned after %s: the plugin was not killed", d)
	}
}

// TestPipeExecRetriesABusyBinary: a plugin binary still open for writing (being installed)
// cannot be executed ("text file busy"); the call is retried until it can.
func TestPipeExecRetriesABusyBinary(t *testing.T) {
	old := busyWait
	busyWait = 50 * time.Millisecond
	defer func() { busyWait = old }()
	path := plugin(t, "echo ok")
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(context.Background(), path, nil, nil); !errors.Is(err, syscall.ETXTBSY) {
		t.Fatalf("run while the binary is open for writing: %v, want ETXTBSY", err)
	}
	if _, err := (&pipeExec{}).ExecPlugin(context.Background(), path, nil, nil); err == nil || !strings.Contains(err.Error(), "text file busy") {
		t.Fatalf("still busy after every retry: %v, want it said", err)
	}
	time.AfterFunc(120*time.Millisecond, func() { _ = w.Close() })
	out, err := (&pipeExec{}).ExecPlugin(context.Background(), path, nil, nil)
	if err != nil || string(out) != "ok\n" {
		t.Fatalf("after the writer closed: %q, %v", out, err)
	}
}

// BenchmarkExec compares the daemon's own CPU per plugin call (user + system of this
// process; the plugin's is its own) of pipeExec and libcni's executor, running cat on a
// 1.5 KiB config.
func BenchmarkExec(b *testing.B) {
	conf := bytes.Repeat([]byte("x"), 1500)
	env := os.Environ()
	for _, c := range []struct {
		name string
		exec invoke.Exec
	}{
		{"pipeExec", &pipeExec{}},
		{"libcni RawExec", &invoke.DefaultExec{RawExec: &invoke.RawExec{}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			before := selfCPU()
			for range b.N {
				out, err := c.exec.ExecPlugin(context.Background(), "/bin/cat", conf, env)
				if err != nil || len(out) != len(conf) {
					b.Fatalf("%d bytes back, %v", len(out), err)
				}
			}
			b.ReportMetric(float64(selfCPU()-before)/float64(b.N)/1e3, "self-cpu-µs/op")
		})
	}
}

func selfCPU() time.Duration {
	var r syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
