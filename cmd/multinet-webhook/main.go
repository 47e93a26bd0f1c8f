// Command multinet-webhook is multinet's validating admission webhook: it refuses
// NetworkAttachmentDefinitions and pod network annotations that multinetd would refuse at
// CNI ADD. Run `multinet-webhook --help` for its flags; deploy/webhook deploys it.
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

	"github.com/multinet/multinet/internal/webhook"
)

func main() {
	opts, err := webhook.Parse(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "multinet-webhook:", err)
		os.Exit(2)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(opts.LogLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "multinet-webhook: --log-level:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := webhook.Run(ctx, opts, log); err != nil {
		log.Error("multinet-webhook stopped", "err", err)
		os.Exit(1)
	}
}
