// Command multinetd is multinet's node daemon: it serves the shim's CNI requests, attaching
// each pod's networks through the real CNI plugins. Run `multinetd --help` for its flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/multinet/multinet/internal/daemon"
)

func main() {
	opts, err := daemon.Parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "multinetd:", err)
		os.Exit(2)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(opts.LogLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "multinetd: --log-level:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, opts, log); err != nil {
		log.Error("multinetd stopped", "err", err)
		os.Exit(1)
	}
}
