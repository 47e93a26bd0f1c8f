package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
)

// identity is who the pod is to the DHCP server; it goes into every message.
type identity struct {
	ClientID []byte           `json:"clientID"`
	Hostname string           `json:"hostname,omitempty"`
	Extra    map[uint8][]byte `json:"extra,omitempty"`   // options from "provide"
	Request  []uint8          `json:"request,omitempty"` // options from "request"
}

func (id *identity) modifiers() []dhcpv4.Modifier {
	mods := []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id.ClientID)),
		dhcpv4.WithRequestedOptions(requested...)}
	if id.Hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(id.Hostname)))
	}
	for code, v := range id.Extra {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(code), v))
	}
	for _, code := range id.Request {
		mods = append(mods, dhcpv4.WithRequestedOptions(dhcpv4.GenericOptionCode(code)))
	}
	return mods
}

// link is the interface a conversation runs on: the pod's, or (empty Netns) a host one.
type link struct {
	Netns  string
	IfName string
}

// exchange is one DHCP conversation on a pod's interface. Its packet socket is opened inside
// the pod's netns and stays bound there after the thread leaves it; it is closed when the
// conversation ends, so no socket sees the pod's traffic between conversations.
type exchange struct {
	*nclient4.Client
	hw   net.HardwareAddr
	sent sentCounter
}

// errNetnsGone marks a pod netns that no longer exists (DEL and renewals then give up quietly).
var errNetnsGone = errors.New("network namespace is gone")

// open starts a conversation on l. src is the address the pod holds (nil before it has
// one): the source of what is sent. wait is the
// first retransmission timeout (doubled each time) and tries the number of transmissions.
func open(l link, src net.IP, wait time.Duration, tries int) (*exchange, error) {
	var conn net.PacketConn
	var hw net.HardwareAddr
	err := inNetns(l.Netns, func() error {
		var err error
		hw, err = linkUp(l.IfName, l.Netns != "")
		if err != nil {
			return err
		}
		conn, err = nclient4.NewRawUDPConn(l.IfName, nclient4.ClientPort)
		if err != nil {
			return fmt.Errorf("packet socket on %s: %w", l.IfName, err)
		}
		return nil
	})
	var gone ns.NSPathNotExistErr
	if errors.As(err, &gone) {
		return nil, fmt.Errorf("netns %s: %w", l.Netns, errNetnsGone)
	}
	if err != nil {
		return nil, err
	}
	if src != nil {
		raw := conn.(*nclient4.BroadcastRawUDPConn).PacketConn
		conn = sourcedConn{PacketConn: conn, send: nclient4.NewBroadcastUDPConn(raw, &net.UDPAddr{IP: src, Port: nclient4.ClientPort})}
	}
	x := &exchange{hw: hw}
	x.Client, err = nclient4.NewWithConn(conn, hw, nclient4.WithTimeout(wait), nclient4.WithRetry(tries),
		nclient4.WithLogger(&x.sent))
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("DHCP client on %s: %w", l.IfName, err)
	}
	return x, nil
}

// sourcedConn sends from the pod's address (a renewal is unicast from it) but receives what
// comes to any address on the client port: a server broadcasts its DHCPNAK.
type sourcedConn struct {
	net.PacketConn
	send net.PacketConn
}

func (c sourcedConn) WriteTo(b []byte, addr net.Addr) (int, error) { return c.send.WriteTo(b, addr) }

// inNetns runs f in the netns at path, or where the daemon runs for an empty path.
func inNetns(path string, f func() error) error {
	if path == "" {
		return f()
	}
	return ns.WithNetNSPath(path, func(ns.NetNS) error { return f() })
}

// carrierWait bounds the wait for a new link's carrier before the first message.
const carrierWait = 2 * time.Second

// linkUp returns the interface's MAC. For a pod interface (ours to prepare) it first brings
// it up (plugins configure addresses later) and waits for carrier: a veth created a moment
// ago gets it (and its bridge port starts forwarding) only when the kernel's link watcher
// runs, up to a second later, and a DISCOVER sent before that is lost. A host link is used
// as it is.
func linkUp(ifname string, pod bool) (net.HardwareAddr, error) {
	lk, err := netlinksafe.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	if !pod {
		return lk.Attrs().HardwareAddr, nil
	}
	if lk.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(lk); err != nil {
			return nil, fmt.Errorf("set %s up: %w", ifname, err)
		}
	}
	for deadline := time.Now().Add(carrierWait); lk.Attrs().OperState == netlink.OperDown ||
		lk.Attrs().OperState == netlink.OperLowerLayerDown; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			break // no carrier yet: try anyway, the retransmissions cover a late one
		}
		if lk, err = netlinksafe.LinkByName(ifname); err != nil {
			return nil, fmt.Errorf("interface %s: %w", ifname, err)
		}
	}
	return lk.Attrs().HardwareAddr, nil
}

// firstWait spreads tries transmissions over total with doubling timeouts, as nclient4
// retransmits: total = w + 2w + 4w + ...
func firstWait(total time.Duration, tries int) time.Duration {
	return total / time.Duration((1<<tries)-1)
}

// errNoAnswer marks a server that did not answer within the time given.
var errNoAnswer = errors.New("no answer")

// maxNaks bounds how often discover starts over after a DHCPNAK.
const maxNaks = 3

// discover runs DISCOVER, OFFER, REQUEST, ACK, asking for want in the DISCOVER if set; the
// REQUEST asks for what was offered. A DHCPNAK (another client took the offered address
// first) starts it over, as RFC 2131 asks.
func (x *exchange) discover(ctx context.Context, id *identity, want net.IP) (*dhcpv4.DHCPv4, error) {
	mods := append(id.modifiers(), dhcpv4.WithBroadcast(true))
	ask := mods
	if want != nil {
		ask = append(slices.Clip(mods), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want)))
	}
	start := time.Now()
	for naks := 0; ; naks++ {
		offer, err := x.DiscoverOffer(ctx, ask...)
		if err != nil {
			return nil, fmt.Errorf("sent DHCPDISCOVER %d times over %s, no offer: %w", x.sent.n(dhcpv4.MessageTypeDiscover),
				time.Since(start).Round(100*time.Millisecond), noAnswer(err))
		}
		lease, err := x.RequestFromOffer(ctx, offer, mods...)
		var nak *nclient4.ErrNak
		switch {
		case errors.As(err, &nak) && naks < maxNaks && ctx.Err() == nil:
			continue
		case errors.As(err, &nak):
			return nil, fmt.Errorf("server %s refused DHCPREQUEST for %s: %s", offer.ServerIdentifier(), offer.YourIPAddr, nak.Nak.Message())
		case err != nil:
			return nil, fmt.Errorf("offer of %s from %s; sent DHCPREQUEST %d times, no answer: %w", offer.YourIPAddr,
				offer.ServerIdentifier(), x.sent.n(dhcpv4.MessageTypeRequest), noAnswer(err))
		}
		return lease.ACK, nil
	}
}

// request sends a DHCPREQUEST for the lease's address and waits for ACK or NAK: RENEWING
// (unicast to the server), REBINDING (broadcast) or INIT-REBOOT (broadcast, address in
// option 50, as after a daemon restart).
func (x *exchange) request(ctx context.Context, id *identity, ack *dhcpv4.DHCPv4, ph phase) (*dhcpv4.DHCPv4, error) {
	mods := append(id.modifiers(), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithHwAddr(x.hw))
	dst := nclient4.DefaultServers
	switch ph {
	case renewing:
		mods = append(mods, dhcpv4.WithClientIP(ack.YourIPAddr))
		dst = &net.UDPAddr{IP: ack.ServerIdentifier(), Port: nclient4.ServerPort}
	case rebinding:
		mods = append(mods, dhcpv4.WithClientIP(ack.YourIPAddr))
	default:
		mods = append(mods, dhcpv4.WithBroadcast(true), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ack.YourIPAddr)))
	}
	req, err := dhcpv4.New(mods...)
	if err != nil {
		return nil, fmt.Errorf("build DHCPREQUEST: %w", err)
	}
	resp, err := x.SendAndRead(ctx, dst, req, nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak))
	if err != nil {
		return nil, fmt.Errorf("%s: sent DHCPREQUEST %d times for %s, no answer: %w", ph, x.sent.n(dhcpv4.MessageTypeRequest),
			ack.YourIPAddr, noAnswer(err))
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		return nil, &nakError{server: resp.ServerIdentifier(), ip: ack.YourIPAddr, msg: resp.Message()}
	}
	return resp, nil
}

// release tells the server the address of the client hw is free (there is no answer to
// wait for).
func (x *exchange) release(id *identity, ack *dhcpv4.DHCPv4, hw net.HardwareAddr) error {
	err := x.Release(&nclient4.Lease{ACK: ack}, dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id.ClientID)),
		dhcpv4.WithHwAddr(hw))
	if err != nil {
		return fmt.Errorf("send DHCPRELEASE for %s: %w", ack.YourIPAddr, err)
	}
	return nil
}

// nakError is a server refusing the address.
type nakError struct {
	server, ip net.IP
	msg        string
}

func (e *nakError) Error() string {
	return fmt.Sprintf("server %s refused %s (DHCPNAK %q)", e.server, e.ip, e.msg)
}

func noAnswer(err error) error {
	if errors.Is(err, nclient4.ErrNoResponse) || errors.Is(err, context.DeadlineExceeded) {
		return errNoAnswer
	}
	return err
}

// sentCounter is an nclient4 logger that counts the messages sent, by type.
type sentCounter struct{ byType [256]atomic.Int32 }

func (c *sentCounter) Printf(string, ...any) {}

func (c *sentCounter) PrintMessage(prefix string, m *dhcpv4.DHCPv4) {
	if prefix == "sent message" {
		c.byType[m.MessageType()].Add(1)
	}
}

func (c *sentCounter) n(t dhcpv4.MessageType) int { return int(c.byType[t].Load()) }

// reacquire runs DISCOVER asking for the address the pod has, and takes the offer only if
// it is that address: the pod's interface is never reconfigured behind its back.
func (x *exchange) reacquire(ctx context.Context, id *identity, want net.IP) (*dhcpv4.DHCPv4, error) {
	mods := append(id.modifiers(), dhcpv4.WithBroadcast(true), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want)))
	offer, err := x.DiscoverOffer(ctx, mods...)
	if err != nil {
		return nil, fmt.Errorf("sent DHCPDISCOVER for %s, no offer: %w", want, noAnswer(err))
	}
	if !offer.YourIPAddr.Equal(want) {
		return nil, fmt.Errorf("server %s offers %s, not the pod's %s: declined",
			offer.ServerIdentifier(), offer.YourIPAddr, want)
	}
	lease, err := x.RequestFromOffer(ctx, offer, mods...)
	if err != nil {
		return nil, fmt.Errorf("DHCPREQUEST for %s: %w", want, noAnswer(err))
	}
	return lease.ACK, nil
}

// setMTU applies the server's MTU (option 26) to the pod's interface.
func setMTU(l link, mtu int) error {
	return ns.WithNetNSPath(l.Netns, func(ns.NetNS) error {
		lk, err := netlinksafe.LinkByName(l.IfName)
		if err != nil {
			return fmt.Errorf("interface %s: %w", l.IfName, err)
		}
		if err := netlink.LinkSetMTU(lk, mtu); err != nil {
			return fmt.Errorf("set MTU %d on %s: %w", mtu, l.IfName, err)
		}
		return nil
	})
}

// close ends the conversation; its socket's close error has nothing left to report.
func (x *exchange) close() { _ = x.Close() }
