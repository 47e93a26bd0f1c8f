package dhcp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestDNSOfAHeldLease: the lease's DNS is there for network-status while it is held (the
// plugin's result may have dropped it), and nothing for an interface without one.
func TestDNSOfAHeldLease(t *testing.T) {
	m, err := New(t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	defer m.Wait()
	defer cancel()
	ack, err := dhcpv4.New(dhcpv4.WithYourIP(net.IPv4(10, 40, 0, 7)), dhcpv4.WithLeaseTime(3600),
		dhcpv4.WithOption(dhcpv4.OptDNS(net.IPv4(10, 40, 0, 53))), dhcpv4.WithOption(dhcpv4.OptDomainName("dhcp.test")))
	if err != nil {
		t.Fatal(err)
	}
	l := &Lease{ContainerID: "c1", IfName: "net1"}
	l.setACK(ack, time.Now())
	m.keep(l, false)
	if d := m.DNS("c1", "net1"); !slices.Equal(d.Nameservers, []string{"10.40.0.53"}) || d.Domain != "dhcp.test" {
		t.Errorf("DNS of the held lease: %+v", d)
	}
	if d := m.DNS("c1", "net2"); !d.IsEmpty() {
		t.Errorf("DNS of an interface without a lease: %+v", d)
	}
}
