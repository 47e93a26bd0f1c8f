package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/netconf"
	"github.com/multinet/multinet/internal/selection"
)

// Network is one NetworkAttachmentDefinition as `networks` shows it.
type Network struct {
	Namespace  string   `json:"namespace"`
	Name       string   `json:"name"`
	Type       string   `json:"type,omitempty"`
	Plugins    []string `json:"plugins,omitempty"`
	Master     string   `json:"master,omitempty"`
	IPAM       string   `json:"ipam,omitempty"`
	Subnets    []string `json:"subnets,omitempty"`
	CNIVersion string   `json:"cniVersion,omitempty"`
	Pods       int      `json:"pods"`
	Error      string   `json:"error,omitempty"`
}

// networksOptions are the flags of `networks`.
type networksOptions struct {
	root *root
	out  output
	all  bool
}

func newNetworksCommand(r *root) *cobra.Command {
	o := &networksOptions{root: r}
	cmd := &cobra.Command{
		Use:     "networks",
		Aliases: []string{"nets"},
		Short:   "List NetworkAttachmentDefinitions: plugin, master, IPAM, subnet and how many pods use each",
		Example: `  kubectl multinet networks -n shared
  kubectl multinet networks -A -o wide`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), cmd.OutOrStdout()) },
	}
	cmd.Flags().BoolVarP(&o.all, "all-namespaces", "A", false, "Every namespace's networks")
	o.out.addFlag(cmd)
	return cmd
}

func (o *networksOptions) run(ctx context.Context, w io.Writer) error {
	if err := o.out.validate(); err != nil {
		return err
	}
	c, err := o.root.clients()
	if err != nil {
		return err
	}
	ns := c.namespace
	if o.all {
		ns = ""
	}
	nads, err := c.nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list network-attachment-definitions in namespace %q: %w", ns, err)
	}
	uses, err := podsPerNetwork(ctx, c, ns)
	if err != nil {
		return err
	}
	nets := make([]Network, 0, len(nads.Items))
	for i := range nads.Items {
		n := describeNAD(&nads.Items[i])
		n.Pods = uses[n.Namespace+"/"+n.Name]
		nets = append(nets, n)
	}
	if done, err := o.out.structured(w, nets); done || err != nil {
		return err
	}
	return o.printTable(w, nets)
}

// podsPerNetwork counts, per "namespace/name", the pods whose networks annotation names
// it. Pods of every namespace may name a NAD, so all are read when allowed; else those of ns.
func podsPerNetwork(ctx context.Context, c *clients, ns string) (map[string]int, error) {
	pods, err := c.core.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) && ns != "" {
		pods, err = c.core.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	uses := map[string]int{}
	for _, pod := range pods.Items {
		elems, err := selection.FromAnnotations(pod.Annotations, pod.Namespace)
		if err != nil {
			continue
		}
		counted := map[string]bool{}
		for _, e := range elems {
			if key := e.Namespace + "/" + e.Name; !counted[key] {
				counted[key] = true
				uses[key]++
			}
		}
	}
	return uses, nil
}

// pluginConf is what `networks` reads from a plugin's conf.
type pluginConf struct {
	Master string `json:"master"`
	Device string `json:"device"`
	Bridge string `json:"bridge"`
	IPAM   struct {
		Type   string `json:"type"`
		Subnet string `json:"subnet"`
		Ranges [][]struct {
			Subnet string `json:"subnet"`
		} `json:"ranges"`
	} `json:"ipam"`
}

// describeNAD reads a NAD's config with the daemon's parser.
func describeNAD(nad *nadv1.NetworkAttachmentDefinition) Network {
	n := Network{Namespace: nad.Namespace, Name: nad.Name}
	if strings.TrimSpace(nad.Spec.Config) == "" {
		n.Error = "no spec.config: a conf file of the same name on each node"
		return n
	}
	list, err := netconf.Parse([]byte(nad.Spec.Config), nad.Name)
	if err != nil {
		n.Error = err.Error()
		return n
	}
	n.CNIVersion = list.CNIVersion
	for _, p := range list.Plugins {
		n.Plugins = append(n.Plugins, p.Network.Type)
	}
	first := list.Plugins[0]
	n.Type = first.Network.Type
	var conf pluginConf
	if err := json.Unmarshal(first.Bytes, &conf); err != nil {
		n.Error = fmt.Sprintf("plugin %s: %v", n.Type, err)
		return n
	}
	n.Master = firstOf(conf.Master, conf.Device, conf.Bridge)
	n.IPAM = conf.IPAM.Type
	if conf.IPAM.Subnet != "" {
		n.Subnets = append(n.Subnets, conf.IPAM.Subnet)
	}
	for _, set := range conf.IPAM.Ranges {
		for _, r := range set {
			n.Subnets = append(n.Subnets, r.Subnet)
		}
	}
	return n
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

func (o *networksOptions) printTable(w io.Writer, nets []Network) error {
	header := []string{"NAME", "TYPE", "MASTER", "IPAM", "SUBNET", "PODS"}
	if o.all {
		header = append([]string{"NAMESPACE"}, header...)
	}
	if o.out.wide() {
		header = append(header, "PLUGINS", "CNIVERSION", "ERROR")
	}
	t := newTable(w, header...)
	var faults []error
	for _, n := range nets {
		row := []string{n.Name, orDash(n.Type), orDash(n.Master), orDash(n.IPAM), list(n.Subnets), strconv.Itoa(n.Pods)}
		if o.all {
			row = append([]string{n.Namespace}, row...)
		}
		if o.out.wide() {
			row = append(row, list(n.Plugins), orDash(n.CNIVersion), orDash(n.Error))
		}
		if n.Error != "" && !o.out.wide() {
			faults = append(faults, fmt.Errorf("network %s/%s: %s", n.Namespace, n.Name, n.Error))
		}
		t.row(row...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if err := errors.Join(faults...); err != nil {
		fmt.Fprintln(w, err)
	}
	return nil
}
