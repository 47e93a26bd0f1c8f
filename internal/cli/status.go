package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spf13/cobra"

	"github.com/multinet/multinet/internal/selection"
)

// statusOptions are the flags of `status`.
type statusOptions struct {
	root *root
	out  output
	all  bool
}

func newStatusCommand(r *root) *cobra.Command {
	o := &statusOptions{root: r}
	cmd := &cobra.Command{
		Use:   "status [POD]",
		Short: "Show pods' interfaces and whether network-status matches the networks annotation",
		Example: `  kubectl multinet status web-0
  kubectl multinet status -A -o wide`,
		Args:              args(cobra.MaximumNArgs(1)),
		ValidArgsFunction: completePods(r),
		RunE: func(cmd *cobra.Command, a []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), a)
		},
	}
	cmd.Flags().BoolVarP(&o.all, "all-namespaces", "A", false, "Every namespace's pods")
	o.out.addFlag(cmd)
	return cmd
}

func (o *statusOptions) run(ctx context.Context, w, errOut io.Writer, a []string) error {
	if err := o.out.validate(); err != nil {
		return err
	}
	if o.all && len(a) > 0 {
		return &usageError{errors.New("a pod name and --all-namespaces exclude each other")}
	}
	c, err := o.root.clients()
	if err != nil {
		return err
	}
	ns := c.namespace
	if o.all {
		ns = ""
	}
	pods, err := podsToShow(ctx, c, ns, a)
	if err != nil {
		return err
	}
	events, err := eventsFor(ctx, c, ns, pods)
	if err != nil {
		return err
	}
	views := make([]*PodNetworks, 0, len(pods))
	healthy := true
	for i := range pods {
		v := viewPod(&pods[i], events[pods[i].UID])
		healthy = healthy && v.Healthy()
		views = append(views, v)
	}
	if o.out.format != "" { // the policies are a column of wide and fields of json and yaml
		if err := withPolicies(ctx, c, ns, pods, views); err != nil {
			fmt.Fprintf(errOut, "warning: policies not shown: %v\n", err)
		}
		if err := withDevices(ctx, c, pods, views); err != nil {
			fmt.Fprintf(errOut, "warning: devices not shown: %v\n", err)
		}
	}
	if done, err := o.out.structured(w, views); done || err != nil {
		return err
	}
	if err := o.printTable(w, views); err != nil {
		return err
	}
	if !healthy {
		return errUnhealthy
	}
	return nil
}

// podsToShow is the named pod, or the pods of ns with a networks annotation or a
// secondary network in their network-status.
func podsToShow(ctx context.Context, c *clients, ns string, names []string) ([]corev1.Pod, error) {
	if len(names) == 1 {
		pod, err := c.core.CoreV1().Pods(ns).Get(ctx, names[0], metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("pod %s/%s: %w", ns, names[0], err)
		}
		return []corev1.Pod{*pod}, nil
	}
	list, err := c.core.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods in namespace %q: %w", ns, err)
	}
	var out []corev1.Pod
	for _, pod := range list.Items {
		if selection.Raw(pod.Annotations) != "" || hasSecondary(networkStatus(&pod)) {
			out = append(out, pod)
		}
	}
	return out, nil
}

// eventsFor lists multinet's events of one pod, or of the namespace when there are more.
func eventsFor(ctx context.Context, c *clients, ns string, pods []corev1.Pod) (podEvents, error) {
	switch len(pods) {
	case 0:
		return podEvents{}, nil
	case 1:
		return listEvents(ctx, c, pods[0].Namespace, &pods[0])
	}
	return listEvents(ctx, c, ns, nil)
}

func (o *statusOptions) printTable(w io.Writer, views []*PodNetworks) error {
	if len(views) == 0 {
		fmt.Fprintln(w, "No pods with secondary networks found.")
		return nil
	}
	header := []string{"POD", "INTERFACE", "NETWORK", "ADDRESSES", "MAC", "DEFAULT", "STATE"}
	if o.all {
		header = append([]string{"NAMESPACE"}, header...)
	}
	if o.out.wide() {
		header = append(header, "GATEWAY", "NODE", "DEVICE", "POLICIES")
	}
	t := newTable(w, header...)
	for _, v := range views {
		for _, i := range v.Interfaces {
			row := []string{v.Name, i.Name, i.Network, list(i.IPs), orDash(i.MAC), strconv.FormatBool(i.Default), i.State}
			if o.all {
				row = append([]string{v.Namespace}, row...)
			}
			if o.out.wide() {
				row = append(row, list(i.Gateway), orDash(v.Node), orDash(i.Device), list(i.Policies))
			}
			t.row(row...)
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, v := range views {
		if s := v.summary(); s != "" {
			fmt.Fprintln(w, s)
		}
	}
	return nil
}

// completePods completes a pod name in the namespace of the flags.
func completePods(r *root) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, a []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(a) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := r.clients()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		list, err := c.core.CoreV1().Pods(c.namespace).List(cmd.Context(), metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		names := make([]string, 0, len(list.Items))
		for _, p := range list.Items {
			names = append(names, p.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
