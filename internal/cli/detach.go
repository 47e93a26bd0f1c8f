package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/multinet/multinet/internal/selection"
	"github.com/multinet/multinet/internal/status"
)

func newDetachCommand(r *root) *cobra.Command {
	o := &editOptions{root: r}
	cmd := &cobra.Command{
		Use:   "detach POD IF|NET",
		Short: "Remove an interface (by name) or a network from a running pod's networks annotation and wait until it is unplugged",
		Example: `  kubectl multinet detach web-0 net2
  kubectl multinet detach web-0 shared/storage`,
		Args:              args(cobra.ExactArgs(2)),
		ValidArgsFunction: completePods(r),
		RunE: func(cmd *cobra.Command, a []string) error {
			return o.runDetach(cmd.Context(), cmd.OutOrStdout(), a[0], a[1])
		},
	}
	o.addFlags(cmd)
	return cmd
}

func (o *editOptions) runDetach(ctx context.Context, w io.Writer, podName, target string) error {
	c, err := o.root.clients()
	if err != nil {
		return err
	}
	var ifname, network string
	edit := func(pod *corev1.Pod) (string, error) {
		v := viewPod(pod, nil)
		if v.State == StateInvalid {
			return "", fmt.Errorf("pod %s/%s: %s", pod.Namespace, pod.Name, v.Error)
		}
		index, err := v.find(target)
		if err != nil {
			return "", err
		}
		e := v.elements[index]
		network, ifname = e.Namespace+"/"+e.Name, e.InterfaceRequest
		if m := v.match[index]; m >= 0 {
			ifname = v.status[m].Interface
		}
		return removeElement(selection.Raw(pod.Annotations), index)
	}
	pod, before, err := editNetworks(ctx, c, podName, edit)
	if err != nil || o.timeout == 0 || ifname == "" {
		return err
	}
	gone := func(v *PodNetworks) bool {
		for _, s := range v.status {
			if s.Interface == ifname {
				return false
			}
		}
		return true
	}
	f := failure{reason: status.ReasonUnplugFailed, about: []string{fmt.Sprintf("%q", network), ifname}}
	if _, err := o.wait(ctx, c, pod, before, gone, f); err != nil {
		return o.failed(w, pod, "detach "+ifname, err)
	}
	fmt.Fprintf(w, "pod %s/%s: detached %s (%s)\n", pod.Namespace, pod.Name, ifname, network)
	return nil
}

// find returns the index of the element target names: the element on interface target,
// else the only element of network target (name in the pod's namespace, or namespace/name).
func (p *PodNetworks) find(target string) (int, error) {
	for i, e := range p.elements {
		if e.InterfaceRequest == target || p.match[i] >= 0 && p.status[p.match[i]].Interface == target {
			return i, nil
		}
	}
	var found []int
	var ifs []string
	for i, e := range p.elements {
		if target == e.Namespace+"/"+e.Name || e.Namespace == p.Namespace && target == e.Name {
			found = append(found, i)
			if p.match[i] >= 0 {
				ifs = append(ifs, p.status[p.match[i]].Interface)
			}
		}
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("pod %s/%s: no interface or network %q in its networks annotation", p.Namespace, p.Name, target)
	case 1:
		return found[0], nil
	}
	return 0, fmt.Errorf("pod %s/%s: network %q is attached %d times (interfaces %s): name the interface",
		p.Namespace, p.Name, target, len(found), strings.Join(ifs, ", "))
}
