package dhcp

import (
	"fmt"
	"math"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Lease is one pod interface's lease as kept on disk: enough to renew it after a restart
// and to release it on DEL without the network configuration.
type Lease struct {
	ContainerID string    `json:"containerID"`
	IfName      string    `json:"ifName"`
	Netns       string    `json:"netns"`
	Network     string    `json:"network"`  // the NAD, for logs and errors
	ConfName    string    `json:"confName"` // the conf's name, for CNI GC
	Pod         podRef    `json:"pod"`
	HWAddr      string    `json:"hwAddr"`           // the pod interface's MAC when the lease was granted
	Uplink      string    `json:"uplink,omitempty"` // host bridge of a bridge network (see releaseLinks)
	Identity    identity  `json:"identity"`
	ACK         []byte    `json:"ack"`   // the server's last DHCPACK, as sent
	Bound       time.Time `json:"bound"` // when that ACK arrived
	RenewAfter  Duration  `json:"renewAfter,omitempty"`

	ack *dhcpv4.DHCPv4
}

// key names a lease: the CNI attachment (container ID and interface).
func key(containerID, ifname string) string { return containerID + "/" + ifname }

func (l *Lease) key() string { return key(l.ContainerID, l.IfName) }

func (l *Lease) link() link { return link{Netns: l.Netns, IfName: l.IfName} }

// releaseLinks are where a DHCPRELEASE can go out: the pod's interface, and for a bridge
// network the host bridge (the bridge plugin deletes the pod's interface before it runs
// IPAM DEL, and a netns may be gone already). podAlive is false when the runtime passed no netns.
func (l *Lease) releaseLinks(podAlive bool) []link {
	var out []link
	if podAlive {
		out = append(out, l.link())
	}
	if l.Uplink != "" {
		out = append(out, link{IfName: l.Uplink})
	}
	return out
}

// IP is the leased address.
func (l *Lease) IP() net.IP { return l.ack.YourIPAddr }

// setACK records a new ACK received at t.
func (l *Lease) setACK(ack *dhcpv4.DHCPv4, t time.Time) {
	l.ack, l.ACK, l.Bound = ack, ack.ToBytes(), t
}

// decodeACK restores the parsed ACK of a lease read from disk.
func (l *Lease) decodeACK() error {
	ack, err := dhcpv4.FromBytes(l.ACK)
	if err != nil {
		return fmt.Errorf("lease %s: recorded DHCPACK: %w", l.key(), err)
	}
	if ack.YourIPAddr.To4() == nil || ack.YourIPAddr.IsUnspecified() {
		return fmt.Errorf("lease %s: recorded DHCPACK has no address", l.key())
	}
	l.ack = ack
	return nil
}

// phase is where a lease stands in RFC 2131's client state machine.
type phase int

const (
	bound     phase = iota // before T1: nothing to do
	renewing               // T1..T2: unicast REQUEST to the server that granted it
	rebinding              // T2..expiry: broadcast REQUEST to any server
	expired                // after expiry: INIT-REBOOT, then DISCOVER for the same address
	rebooting              // after a daemon restart: INIT-REBOOT at once
)

func (p phase) String() string {
	return [...]string{"bound", "renewing", "rebinding", "expired", "init-reboot"}[p]
}

// infinite is an endless lease (0xffffffff seconds): never renewed.
const infinite = time.Duration(math.MaxUint32) * time.Second

// times are T1, T2 and expiry of the lease (RFC 2131 4.4.5 defaults: 0.5 and 0.875 of it).
func (l *Lease) times() (t1, t2, exp time.Time) {
	life := l.ack.IPAddressLeaseTime(time.Hour)
	if life >= infinite {
		far := l.Bound.Add(100 * 365 * 24 * time.Hour)
		return far, far, far
	}
	r1 := l.ack.IPAddressRenewalTime(life / 2)
	r2 := l.ack.IPAddressRebindingTime(life * 7 / 8)
	if l.RenewAfter.Duration > 0 {
		r1 = l.RenewAfter.Duration
	}
	r2 = max(min(r2, life), r1)
	r1 = min(r1, r2)
	return l.Bound.Add(r1), l.Bound.Add(r2), l.Bound.Add(life)
}

// phaseAt is the lease's phase at now.
func (l *Lease) phaseAt(now time.Time) phase {
	t1, t2, exp := l.times()
	switch {
	case now.Before(t1):
		return bound
	case now.Before(t2):
		return renewing
	case now.Before(exp):
		return rebinding
	}
	return expired
}

// retryAfter is when to try again after a failed attempt at now: half the time left to the
// next boundary (RFC 2131 4.4.5), at least floor.
func (l *Lease) retryAfter(now time.Time, floor time.Duration) time.Duration {
	t1, t2, exp := l.times()
	switch l.phaseAt(now) {
	case bound: // an INIT-REBOOT went unanswered: the lease holds until T1
		return max(t1.Sub(now), floor)
	case renewing:
		return max(t2.Sub(now)/2, floor)
	case rebinding:
		return max(exp.Sub(now)/2, floor)
	}
	return max(floor, time.Minute)
}
