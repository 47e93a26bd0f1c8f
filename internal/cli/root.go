// Package cli is kubectl-multinet, the kubectl plugin for multinet: status, diagnose,
// attach, detach and networks. It reads pods, their networks and network-status
// annotations, multinet's Events, NetworkAttachmentDefinitions and MultiNetworkPolicies
// through the API, with the daemon's own parsers (internal/selection, internal/netconf,
// internal/policy/spec), and edits only the networks annotation of a pod.
//
// Exit codes follow kubectl's: 0 ok, 1 a failure or an unhealthy pod, 2 bad usage.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Exit codes of kubectl-multinet.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// errUnhealthy is returned by a command that has already printed why a pod is unhealthy:
// exit 1, no further message.
var errUnhealthy = errors.New("unhealthy")

// usageError is a fault in the command line: exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// root holds what every subcommand shares: the kubectl flags and the streams.
type root struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
}

// clients are the API clients of one command and the namespace it works in.
type clients struct {
	core      kubernetes.Interface
	nads      nadclient.Interface
	dyn       dynamic.Interface // MultiNetworkPolicies
	namespace string
}

// clients builds the API clients from the kubeconfig, context and namespace flags.
func (r *root) clients() (*clients, error) {
	cfg, err := r.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := r.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: namespace: %w", err)
	}
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	nads, err := nadclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("network-attachment-definition client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	return &clients{core: core, nads: nads, dyn: dyn, namespace: ns}, nil
}

// NewCommand returns the kubectl-multinet command tree writing to streams.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	r := &root{flags: genericclioptions.NewConfigFlags(true), streams: streams}
	cmd := &cobra.Command{
		Use:           "kubectl-multinet",
		Short:         "Inspect and edit the secondary networks of pods (multinet)",
		Long:          "kubectl multinet shows, diagnoses and edits the secondary networks multinet attaches to pods.\nSee docs/cli.md.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl multinet"},
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	r.flags.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(newStatusCommand(r), newDiagnoseCommand(r), newAttachCommand(r), newDetachCommand(r), newNetworksCommand(r))
	return cmd
}

// Run runs the command line args (without the program name) and returns the exit code.
func Run(ctx context.Context, args []string, streams genericiooptions.IOStreams) int {
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return exitCode(err, streams.ErrOut)
}

// exitCode prints err (unless a command already explained it) and maps it to an exit code.
func exitCode(err error, errOut io.Writer) int {
	var usage *usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errUnhealthy):
		return ExitFailure
	case errors.As(err, &usage), isCobraUsage(err):
		fmt.Fprintf(errOut, "error: %v\nSee 'kubectl multinet --help'.\n", err)
		return ExitUsage
	default:
		fmt.Fprintf(errOut, "error: %v\n", err)
		return ExitFailure
	}
}

// isCobraUsage recognises the error cobra returns for an unknown subcommand (an untyped error).
func isCobraUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command ")
}

// args wraps a cobra argument check so that its fault is a usage error (exit 2).
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return &usageError{err}
		}
		return nil
	}
}
