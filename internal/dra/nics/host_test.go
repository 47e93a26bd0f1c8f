package nics

import (
	"context"
	"net"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/multinet/multinet/internal/testbed"
)

// Test links carry this prefix, so no test ever selects a real NIC of the host.
const testPrefix = "mdra-"

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (run it under the shared test lock as root)")
	}
}

// addVeth creates the veth pair name/peer in the current network namespace, up, and deletes
// it when the test ends.
func addVeth(t *testing.T, name, peer string) netlink.Link {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: 1400}, PeerName: peer}
	if err := netlink.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	t.Cleanup(func() { delLink(name) })
	return upLink(t, name)
}

// delLink deletes the test link named name from the namespace the cleanup runs in (the
// host's): by name, never by index, since a link made in a test netns has an index that
// means another link on the host. A test netns's links go with the netns.
func delLink(name string) {
	if l, err := netlink.LinkByName(name); err == nil { //nolint:forbidigo // one link, not a dump
		_ = netlink.LinkDel(l)
	}
}

// addMacvlan creates a macvlan link on parent, up, deleted when the test ends.
func addMacvlan(t *testing.T, name string, parent netlink.Link) netlink.Link {
	t.Helper()
	m := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent.Attrs().Index}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	if err := netlink.LinkAdd(m); err != nil {
		t.Fatalf("add macvlan %s: %v", name, err)
	}
	t.Cleanup(func() { delLink(name) })
	return upLink(t, name)
}

func upLink(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name) //nolint:forbidigo // one link, not a dump
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	return l
}

func discoverHost(t *testing.T, cfg Config) []NIC {
	t.Helper()
	links, err := NetlinkHost{}.Links(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return Discover(cfg, links, DefaultSysfs)
}

func TestDiscoverRealLinks(t *testing.T) {
	needRoot(t)
	nic0 := addVeth(t, testPrefix+"nic0", testPrefix+"peer0")
	nic1 := addMacvlan(t, testPrefix+"nic1", nic0)
	got := discoverHost(t, Config{Include: []string{testPrefix + "nic*"}})
	if n := names(got); !reflect.DeepEqual(n, []string{testPrefix + "nic0", testPrefix + "nic1"}) {
		t.Fatalf("discovered %v", n)
	}
	for i, l := range []netlink.Link{nic0, nic1} {
		a := l.Attrs()
		if got[i].MAC != a.HardwareAddr.String() || got[i].MTU != a.MTU || got[i].PCIAddress != "" {
			t.Errorf("%s: discovered %+v, kernel says mac %s mtu %d", a.Name, got[i], a.HardwareAddr, a.MTU)
		}
	}
	if got[0].SpeedMbps == nil || *got[0].SpeedMbps != 10000 {
		t.Errorf("veth speed from sysfs: %v, want 10000", got[0].SpeedMbps)
	}

	// The host's own uplink is never published, even when every name is included.
	uplinks := map[string]bool{}
	links, err := NetlinkHost{}.Links(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.DefaultRoute {
			uplinks[l.Name] = true
		}
	}
	if len(uplinks) == 0 {
		t.Fatal("no link of the host carries a default route")
	}
	for _, n := range discoverHost(t, Config{Include: []string{"*"}}) {
		if uplinks[n.Name] {
			t.Errorf("the uplink %s was published", n.Name)
		}
	}
}

func TestDiscoverSkipsTheDefaultRouteLink(t *testing.T) {
	needRoot(t)
	netns := testbed.NewNetNS(t)
	err := netns.Do(func(ns.NetNS) error {
		addVeth(t, testPrefix+"nic0", testPrefix+"peer0")
		up := addVeth(t, testPrefix+"nic1", testPrefix+"peer1")
		addr, _ := netlink.ParseAddr("192.0.2.1/24")
		if err := netlink.AddrAdd(up, addr); err != nil {
			return err
		}
		gw := net.ParseIP("192.0.2.254")
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: up.Attrs().Index, Gw: gw}); err != nil {
			return err
		}
		if n := names(discoverHost(t, Config{Include: []string{testPrefix + "nic*"}})); !reflect.DeepEqual(n, []string{testPrefix + "nic0"}) {
			t.Errorf("with the default route excluded: %v", n)
		}
		no := false
		if n := names(discoverHost(t, Config{Include: []string{testPrefix + "nic*"}, ExcludeDefaultRoute: &no})); !reflect.DeepEqual(n, []string{testPrefix + "nic0", testPrefix + "nic1"}) {
			t.Errorf("with the default route kept: %v", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWatchSignalsNewLinks(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, err := NetlinkHost{}.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addVeth(t, testPrefix+"nic0", testPrefix+"peer0")
	select {
	case <-events:
	case <-ctx.Done():
		t.Fatal("no event after a link was added")
	}
	cancel()
	for range events { // the channel closes once the context ends
	}
}
