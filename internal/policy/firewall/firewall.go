// Package firewall programs the rules of one pod's secondary interfaces into the pod's
// network namespace: one nftables table, inet multinet, whose base chains input and output
// jump per interface to in-<ifname> and out-<ifname> for the isolated directions. Each
// Program replaces the whole table in one netlink transaction, so there is never a moment
// with the old rules gone and the new ones not yet in. It speaks netlink through
// github.com/google/nftables: there is no binary to ship.
package firewall

import (
	"errors"
	"fmt"
	"os"

	"github.com/google/nftables"

	"github.com/multinet/multinet/internal/policy/compile"
)

// TableName is the name of multinet's table (family inet) in a pod's network namespace.
const TableName = "multinet"

// ErrNoNetns is returned (errors.Is) when the network namespace path does not exist.
var ErrNoNetns = errors.New("network namespace does not exist")

// Options are the node-wide choices of what always passes an isolated direction.
type Options struct {
	AcceptICMPEcho bool // ICMP and ICMPv6 echo request/reply pass isolated directions
}

// Program makes multinet's table in the network namespace at netnsPath exactly rs, in one
// atomic netlink transaction (never a moment with the old rules gone and the new ones not in).
// A Ruleset with both directions nil gets no chains; if no chain is left the table is deleted.
func Program(netnsPath string, rs []compile.Ruleset, o Options) error {
	if err := validate(rs); err != nil {
		return fmt.Errorf("netns %s: %w", netnsPath, err)
	}
	return withConn(netnsPath, func(c *nftables.Conn) error {
		b := newBatch(c)
		b.replaceTable()
		if err := b.program(rs, o); err != nil {
			return fmt.Errorf("netns %s: building table %s: %w", netnsPath, TableName, err)
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("netns %s: programming table %s: %w", netnsPath, TableName, err)
		}
		return nil
	})
}

// Remove deletes multinet's table; no table or no netns is not an error.
func Remove(netnsPath string) error {
	err := withConn(netnsPath, func(c *nftables.Conn) error {
		// Adding the table first makes the delete succeed whether or not it was there.
		newBatch(c).replaceTable()
		if err := c.Flush(); err != nil {
			return fmt.Errorf("netns %s: deleting table %s: %w", netnsPath, TableName, err)
		}
		return nil
	})
	if errors.Is(err, ErrNoNetns) {
		return nil
	}
	return err
}

// withConn runs f with an nftables connection into the network namespace at netnsPath.
func withConn(netnsPath string, f func(*nftables.Conn) error) error {
	ns, err := os.Open(netnsPath)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("netns %s: %w", netnsPath, ErrNoNetns)
	}
	if err != nil {
		return fmt.Errorf("netns %s: opening: %w", netnsPath, err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		return fmt.Errorf("netns %s: nftables connection: %w", netnsPath, err)
	}
	return f(c)
}

// validate checks what the kernel would reject late or what would make two chains collide.
func validate(rs []compile.Ruleset) error {
	seen := make(map[string]bool, len(rs))
	for _, r := range rs {
		if r.IfName == "" || len(r.IfName) > 15 {
			return fmt.Errorf("interface name %q: must be 1 to 15 bytes", r.IfName)
		}
		if seen[r.IfName] {
			return fmt.Errorf("interface %s: two rulesets", r.IfName)
		}
		seen[r.IfName] = true
	}
	return nil
}
