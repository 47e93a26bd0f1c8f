package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// output is the -o flag of a command whose default output is a table.
type output struct{ format string }

func (o *output) addFlag(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "", "Output format: wide, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"wide", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
}

// validate returns a usage error for an unknown format.
func (o *output) validate() error {
	switch o.format {
	case "", "wide", "json", "yaml":
		return nil
	}
	return &usageError{fmt.Errorf("--output %q: want wide, json or yaml", o.format)}
}

func (o *output) wide() bool { return o.format == "wide" }

// structured writes v as JSON or YAML and reports true when the format asks for one.
func (o *output) structured(w io.Writer, v any) (bool, error) {
	switch o.format {
	case "json":
		b, err := json.MarshalIndent(v, "", "    ")
		if err != nil {
			return true, fmt.Errorf("encode json: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return true, err
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, fmt.Errorf("encode yaml: %w", err)
		}
		_, err = w.Write(b)
		return true, err
	}
	return false, nil
}

// table writes tab-separated rows aligned as kubectl's tables are.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.tw, strings.Join(cells, "\t")) }

func (t *table) flush() error { return t.tw.Flush() }

// list joins values with commas, "-" for none, as kubectl prints empty cells.
func list(values []string) string {
	if len(values) == 0 {
		return "-"
	}
	return strings.Join(values, ",")
}
