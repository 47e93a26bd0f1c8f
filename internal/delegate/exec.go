package delegate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// pipeExec runs plugins for libcni as its own executor does (a config on stdin, a result or
// a CNI error on stdout, diagnostics on stderr, retries while the binary is being replaced),
// with less of the daemon's CPU per plugin call: the process is started directly, not through
// os/exec (which looks the path up again, copies the environment once more and runs a
// goroutine per stream), stdin is written and stdout read on the calling goroutine, and only
// stderr has a goroutine of its own. BenchmarkExec compares the two.
type pipeExec struct {
	version.PluginDecoder
	stderr io.Writer // where a successful plugin's stderr goes
	// gomaxprocs, when above 0, is the GOMAXPROCS every plugin runs with (see Runner).
	gomaxprocs int
}

// inlineStdin is how much stdin is written before the plugin is read: a pipe holds at least
// one page, so a write this large never waits for the plugin. A larger config is written by
// a goroutine, so that a plugin that answers before reading all of it cannot block the call.
const inlineStdin = 4096

// maxStderr bounds what is kept of a plugin's stderr; the rest is read and dropped.
const maxStderr = 64 << 10

// busyRetries and busyWait: a plugin binary being written ("text file busy") is run again,
// as libcni's own executor does.
const busyRetries = 5

var busyWait = time.Second

var _ invoke.Exec = (*pipeExec)(nil)

// ExecPlugin runs the plugin at pluginPath with environ and stdin, and returns its stdout.
// A failure is a *types.Error: the plugin's own (from stdout), else one quoting its stderr.
func (e *pipeExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	if e.gomaxprocs > 0 {
		environ = withEnv(environ, "GOMAXPROCS", strconv.Itoa(e.gomaxprocs))
	}
	for attempt := 0; ; attempt++ {
		stdout, stderr, err := run(ctx, pluginPath, stdin, environ)
		if err == nil {
			if e.stderr != nil && len(stderr) > 0 {
				_, _ = e.stderr.Write(stderr)
			}
			return stdout, nil
		}
		if attempt < busyRetries && errors.Is(err, syscall.ETXTBSY) {
			select {
			case <-time.After(busyWait):
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("plugin %s: %w", pluginPath, ctx.Err())
			}
		}
		return nil, pluginErr(err, stdout, stderr)
	}
}

// withEnv is environ with name set to value, in place of any value it had. environ is libcni's
// copy, made for this call, so it is changed in place.
func withEnv(environ []string, name, value string) []string {
	kv := name + "=" + value
	for i, e := range environ {
		if strings.HasPrefix(e, name+"=") {
			environ[i] = kv
			return environ
		}
	}
	return append(environ, kv)
}

// FindInPath finds the plugin binary as libcni does.
func (e *pipeExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

// run starts the plugin, feeds it stdin and collects its output; the plugin is killed when
// ctx ends. err is the start error, or an *os.ExitError-like error for a failed exit.
func run(ctx context.Context, path string, stdin []byte, environ []string) (stdout, stderr []byte, err error) {
	var pipes [3][2]*os.File // stdin, stdout, stderr: [plugin's end, ours]
	closeAll := func() {
		for _, p := range pipes {
			for _, f := range p {
				if f != nil {
					_ = f.Close()
				}
			}
		}
	}
	for i := range pipes {
		r, w, perr := os.Pipe()
		if perr != nil {
			closeAll()
			return nil, nil, fmt.Errorf("plugin %s: %w", path, perr)
		}
		if i == 0 {
			pipes[i] = [2]*os.File{r, w}
		} else {
			pipes[i] = [2]*os.File{w, r}
		}
	}
	proc, err := os.StartProcess(path, []string{path}, &os.ProcAttr{Env: environ,
		Files: []*os.File{pipes[0][0], pipes[1][0], pipes[2][0]}})
	for i := range pipes { // the plugin's ends are the plugin's alone now
		_ = pipes[i][0].Close()
		pipes[i][0] = nil
	}
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	defer closeAll()
	stop := context.AfterFunc(ctx, func() { _ = proc.Kill() })
	defer stop()

	stderrDone := make(chan []byte, 1)
	go func() { stderrDone <- readBounded(pipes[2][1], maxStderr) }()
	in := pipes[0][1]
	pipes[0][1] = nil
	if len(stdin) <= inlineStdin {
		_, _ = in.Write(stdin) // a plugin that exits without reading it breaks the pipe: not an error
		_ = in.Close()
	} else {
		go func() {
			_, _ = in.Write(stdin)
			_ = in.Close()
		}()
	}
	stdout, readErr := io.ReadAll(pipes[1][1])
	state, waitErr := proc.Wait()
	stderr = <-stderrDone
	switch {
	case waitErr != nil:
		return stdout, stderr, fmt.Errorf("plugin %s: %w", path, waitErr)
	case ctx.Err() != nil && !state.Success():
		return stdout, stderr, fmt.Errorf("plugin %s: %w (%s)", path, ctx.Err(), state)
	case !state.Success():
		return stdout, stderr, fmt.Errorf("plugin %s: %s", path, state)
	case readErr != nil:
		return stdout, stderr, fmt.Errorf("plugin %s: stdout: %w", path, readErr)
	}
	return stdout, stderr, nil
}

// readBounded reads r to its end and keeps the first limit bytes.
func readBounded(r io.Reader, limit int64) []byte {
	kept, _ := io.ReadAll(io.LimitReader(r, limit))
	_, _ = io.Copy(io.Discard, r)
	return kept
}

// pluginErr is the CNI error of a failed plugin call, as libcni's executor words it: the
// plugin's own error from stdout, else its stderr quoted, else the exit status.
func pluginErr(err error, stdout, stderr []byte) error {
	var e types.Error
	switch {
	case len(stdout) > 0:
		if perr := json.Unmarshal(stdout, &e); perr != nil {
			e = types.Error{Msg: fmt.Sprintf("netplugin failed but error parsing its diagnostic message %q: %v", stdout, perr)}
		}
	case len(stderr) > 0:
		e.Msg = fmt.Sprintf("netplugin failed: %q", stderr)
	default:
		e.Msg = fmt.Sprintf("netplugin failed with no error message: %v", err)
	}
	return &e
}
