// Package firewall programs the rules of one pod's secondary interfaces into the pod's
// network namespace: one nftables table, inet multinet, whose base chains input and output
// jump per interface to in-<ifname> and out-<ifname> for the isolated directions. Each
// Program replaces the whole table in one netlink transaction, so there is never a moment
// with the old rules gone and the new ones not yet in; Update, given the rules programmed
// last, changes in one transaction only the chains and set elements that differ. It
// speaks netlink through github.com/google/nftables: there is no binary to ship.
package firewall

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

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
		exists, err := hasTable(c)
		if err != nil {
			return fmt.Errorf("netns %s: listing tables: %w", netnsPath, err)
		}
		err = commit(c, exists, rs, o)
		if !exists && errors.Is(err, unix.EEXIST) {
			// The table appeared between the listing and the transaction: replace it.
			err = commit(c, true, rs, o)
		}
		if err != nil {
			return fmt.Errorf("netns %s: %w", netnsPath, err)
		}
		return nil
	})
}

// commit sends the transaction that makes the table rs. When the table exists, the same
// transaction deletes it first; else it creates it, failing should it exist by then.
func commit(c *nftables.Conn, exists bool, rs []compile.Ruleset, o Options) error {
	b := newBatch(c)
	if exists {
		b.replaceTable()
	}
	b.create = !exists
	if err := b.program(rs, o); err != nil {
		return fmt.Errorf("building table %s: %w", TableName, err)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("programming table %s: %w", TableName, err)
	}
	return nil
}

// Remove deletes multinet's table; no table or no netns is not an error.
func Remove(netnsPath string) error {
	err := withConn(netnsPath, func(c *nftables.Conn) error {
		exists, err := hasTable(c)
		if err != nil {
			return fmt.Errorf("netns %s: listing tables: %w", netnsPath, err)
		}
		if !exists {
			return nil
		}
		// Adding the table before deleting it makes the deletion succeed should the table
		// have gone meanwhile.
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

// hasTable says whether multinet's table is there.
func hasTable(c *nftables.Conn) (bool, error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName }), nil
}

// withConn runs f with an nftables connection into the network namespace at netnsPath:
// one netlink socket for all that f does, closed in the background once f is done. The
// kernel holds the close of the socket until what a transaction deleted is freed (an RCU
// grace period, some 13 ms); the rules are in place by then, so nobody waits for it.
func withConn(netnsPath string, f func(*nftables.Conn) error) error {
	ns, err := os.Open(netnsPath)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("netns %s: %w", netnsPath, ErrNoNetns)
	}
	if err != nil {
		return fmt.Errorf("netns %s: opening: %w", netnsPath, err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())), nftables.AsLasting(), nftables.WithSockOptions(largeBuffers))
	if err != nil {
		return fmt.Errorf("netns %s: nftables connection: %w", netnsPath, err)
	}
	defer closing.Go(func() { _ = c.CloseLasting() })
	return f(c)
}

// closing counts the sockets withConn closes in the background: closing a socket after a
// transaction that deleted anything waits some 13 ms in the kernel, which nobody needs to
// wait for.
var closing sync.WaitGroup

// Closed waits until the sockets being closed in the background are closed; a stopping
// daemon calls it last.
func Closed() { closing.Wait() }

// socketBuffer is the most a netlink socket may queue each way. A transaction goes out in
// one message and its acknowledgements (one a rule or set) come back before they are read:
// the default buffers hold a few hundred rules. Memory is only used as it is queued.
const socketBuffer = 32 << 20

// largeBuffers lifts the buffer limits of the socket, beyond the system's maximum (what
// programming a netns needs, CAP_NET_ADMIN, lets it).
func largeBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, socketBuffer)
			}
		}
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("netlink socket buffers: %w", serr)
	}
	return nil
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
