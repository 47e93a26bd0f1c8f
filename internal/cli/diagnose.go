package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Causes diagnose reports, in the order of the chain it walks. docs/cli.md has the table.
const (
	CauseHealthy            = "Healthy"
	CauseAnnotationSyntax   = "AnnotationSyntax"
	CauseNADNotFound        = "NADNotFound"
	CauseNADNotReadable     = "NADNotReadable"
	CauseNADNotAllowed      = "NADNotAllowed"
	CauseNADConfigInvalid   = "NADConfigInvalid"
	CauseNotScheduled       = "PodNotScheduled"
	CauseDaemonMissing      = "MultinetdMissing"
	CauseDaemonNotReady     = "MultinetdNotReady"
	CauseUnknownDaemonState = "MultinetdUnknown"
	CauseIPPoolExhausted    = "IPPoolExhausted"
	CauseDHCPNoServer       = "DHCPNoServer"
	CausePlugFailed         = "PlugFailed"
	CauseUnplugFailed       = "UnplugFailed"
	CauseInvalidSelection   = "InvalidNetworkSelection"
	CauseSetupFailed        = "NetworkSetupFailed"
	CauseMultinetWarning    = "MultinetWarning"
	CauseSandboxPending     = "SandboxPending"
	CauseHotplugPending     = "HotplugPending"
	CauseDeviceNotResolved  = "DeviceNotResolved"
	CauseHotplugRefused     = "HotplugRefused"
)

// cause is the first fault diagnose found: its kind, one line, and what to do.
type cause struct {
	Kind string
	Line string
	Fix  string
}

// diag collects the evidence of a diagnosis and its first cause.
type diag struct {
	cause    *cause
	evidence []string
}

// ok records a check that passed.
func (d *diag) ok(format string, a ...any) {
	d.evidence = append(d.evidence, "ok    "+fmt.Sprintf(format, a...))
}

// note records what was seen without a verdict.
func (d *diag) note(format string, a ...any) {
	d.evidence = append(d.evidence, "      "+fmt.Sprintf(format, a...))
}

// warn records something wrong that is not a cause: the pod's networks are as annotated.
func (d *diag) warn(format string, a ...any) {
	d.evidence = append(d.evidence, "WARN  "+fmt.Sprintf(format, a...))
}

// fail records a failed check; the first one is the cause.
func (d *diag) fail(c cause) {
	d.evidence = append(d.evidence, "FAIL  "+c.Line)
	if d.cause == nil {
		d.cause = &c
	}
}

func newDiagnoseCommand(r *root) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diagnose POD",
		Short: "Find why a pod's networks are not as annotated: the cause in one line, a fix, then the evidence",
		Long: `diagnose walks the chain: the networks annotation's syntax, each NetworkAttachmentDefinition
(exists, readable, allowed for the pod's namespace, config parses), the node's multinetd pod
(Running and its Ready condition True), then multinet's Events on the pod and whether
network-status matches the annotation. It prints the first fault found as the cause.
Then, for each secondary interface, the MultiNetworkPolicies that select it, whether they
isolate ingress and egress and how many allow entries that makes, with warnings: a policy
that does not parse, a policy-for naming a NetworkAttachmentDefinition that does not exist
or no network of the pod, peer pods without an address on the network.`,
		Example:           `  kubectl multinet diagnose web-0`,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: completePods(r),
		RunE: func(cmd *cobra.Command, a []string) error {
			return runDiagnose(cmd.Context(), r, cmd.OutOrStdout(), a[0])
		},
	}
	return cmd
}

func runDiagnose(ctx context.Context, r *root, w io.Writer, podName string) error {
	c, err := r.clients()
	if err != nil {
		return err
	}
	pod, err := c.core.CoreV1().Pods(c.namespace).Get(ctx, podName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("pod %s/%s: %w", c.namespace, podName, err)
	}
	d := &diag{}
	elems := checkAnnotation(d, pod)
	checkNADs(ctx, c, d, pod, elems)
	checkDaemon(ctx, c, d, pod)
	summary := checkEvents(ctx, c, d, pod)
	policies := checkPolicies(ctx, c, pod)
	if d.cause == nil {
		fmt.Fprintf(w, "%s: pod %s/%s: %s\n", CauseHealthy, pod.Namespace, pod.Name, summary)
		printSection(w, "Evidence", d)
		printSection(w, "Policies", policies)
		return nil
	}
	fmt.Fprintf(w, "Cause: %s\n", d.cause.Line)
	fmt.Fprintf(w, "Fix:   %s\n", d.cause.Fix)
	fmt.Fprintf(w, "Kind:  %s\n", d.cause.Kind)
	printSection(w, "Evidence", d)
	printSection(w, "Policies", policies)
	return errUnhealthy
}

func printSection(w io.Writer, title string, d *diag) {
	fmt.Fprintln(w, title+":")
	for _, e := range d.evidence {
		fmt.Fprintln(w, "  "+e)
	}
}
