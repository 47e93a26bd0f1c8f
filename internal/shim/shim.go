// Package shim is the multinet CNI plugin the runtime executes: it holds no credentials and
// makes no decision, it forwards the invocation to multinetd over its unix socket and relays
// the answer. It does what skel does for a plugin (the CNI_* variables each verb needs,
// container ID and interface name checks, the conf's version, VERSION answered locally, a
// CNI error as JSON on stdout with exit code 1) by hand: the runtime execs the shim for every
// pod sandbox, and skel, encoding/json and net/http cost more to start than the shim's work.
// `go list -deps ./cmd/multinet` must show none of net, net/http, encoding/json, fmt, reflect.
package shim

import (
	"context"
	"errors"
	"io"
	"os"
	"time"
)

// timeout bounds one forwarded call; runtimes give up on a CNI call well before that.
const timeout = 5 * time.Minute

// Env is what the runtime hands the process: its environment, stdin and stdout, and
// stderr for the usage text.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Main is the shim's main.
func Main(about string) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	code := Run(ctx, Env{Getenv: os.Getenv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, about)
	cancel()
	os.Exit(code)
}

// Run serves one invocation and returns the exit code: 0, or 1 with the CNI error on stdout.
func Run(ctx context.Context, env Env, about string) int {
	err := run(ctx, env, about)
	if err == nil {
		return 0
	}
	var relayed relayedError
	if errors.As(err, &relayed) {
		_, _ = env.Stdout.Write(append(relayed, '\n'))
		return 1
	}
	var cniErr *Error
	if !errors.As(err, &cniErr) {
		cniErr = &Error{Code: errInternal, Msg: err.Error()}
	}
	_, _ = env.Stdout.Write(cniErr.JSON())
	return 1
}

// run reads the invocation, checks it as skel would, and forwards it.
func run(ctx context.Context, env Env, about string) error {
	inv, err := readInvocation(env.Getenv)
	if inv.Command == "" && about != "" {
		_, _ = io.WriteString(env.Stderr, about+"\nCNI protocol versions supported: "+supportedList()+"\n")
		return nil
	}
	if err != nil {
		return err
	}
	if inv.Command == "VERSION" {
		_, err := env.Stdout.Write(versionJSON())
		return err
	}
	stdin, err := io.ReadAll(env.Stdin)
	if err != nil {
		return inv.fail(errIOFailure, "reading the network configuration from stdin: "+err.Error())
	}
	conf, err := inv.parseConf(stdin)
	if err != nil {
		return err
	}
	if err := inv.checkVersion(conf.CNIVersion); err != nil {
		return err
	}
	if err := inv.checkNetns(); err != nil {
		return err
	}
	return inv.forward(ctx, conf.Socket, stdin, env.Stdout)
}
