package firewall

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Chain is what Read finds for one interface and direction.
type Chain struct {
	IfName    string
	Direction string // "ingress" or "egress"
	Rules     int    // every rule of the interface's chain, the final drop included
	Dropped   uint64 // packets the final drop counted
}

// Read returns the interface chains of multinet's table in the network namespace at
// netnsPath, sorted by interface and direction; none when there is no table.
func Read(netnsPath string) ([]Chain, error) {
	var chains []Chain
	err := withConn(netnsPath, func(c *nftables.Conn) error {
		var err error
		chains, err = readTable(c)
		if err != nil {
			return fmt.Errorf("netns %s: reading table %s: %w", netnsPath, TableName, err)
		}
		return nil
	})
	return chains, err
}

func readTable(c *nftables.Conn) ([]Chain, error) {
	exists, err := hasTable(c)
	if err != nil || !exists {
		return nil, err
	}
	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	all, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, err
	}
	var chains []Chain
	for _, ch := range all {
		if ch.Table.Name != TableName {
			continue
		}
		got, ok, err := readChain(c, table, ch)
		if err != nil {
			return nil, err
		}
		if ok {
			chains = append(chains, got)
		}
	}
	slices.SortFunc(chains, func(a, b Chain) int {
		return cmp.Or(cmp.Compare(a.IfName, b.IfName), cmp.Compare(a.Direction, b.Direction))
	})
	return chains, nil
}

// readChain reads one interface chain; ok is false for the base chains.
func readChain(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain) (Chain, bool, error) {
	var got Chain
	for _, d := range []direction{ingress, egress} {
		if name, ok := strings.CutPrefix(ch.Name, d.prefix); ok {
			got = Chain{IfName: name, Direction: d.name}
		}
	}
	if got.IfName == "" {
		return got, false, nil
	}
	rules, err := c.GetRules(t, ch)
	if err != nil {
		return got, false, fmt.Errorf("chain %s: %w", ch.Name, err)
	}
	got.Rules = len(rules)
	if len(rules) > 0 {
		for _, e := range rules[len(rules)-1].Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				got.Dropped = ctr.Packets
			}
		}
	}
	return got, true, nil
}
