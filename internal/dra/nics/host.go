package nics

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
)

// Host is where links come from: the kernel of the node, or a test's list.
type Host interface {
	// Links lists the host's links, each marked when a default route leaves through it.
	Links(ctx context.Context) ([]Link, error)
	// Watch sends a value after links change (coalesced: one pending value at most) until ctx
	// ends, then closes the channel.
	Watch(ctx context.Context) (<-chan struct{}, error)
}

// NetlinkHost is the Host of the calling process's network namespace.
type NetlinkHost struct{}

// Links implements Host with a link dump and the main table's default routes.
func (NetlinkHost) Links(context.Context) ([]Link, error) {
	nl, err := netlinksafe.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	routes, err := netlinksafe.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	uplinks := defaultRouteLinks(routes)
	links := make([]Link, 0, len(nl))
	for _, l := range nl {
		a := l.Attrs()
		links = append(links, Link{Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU, DefaultRoute: uplinks[a.Index]})
	}
	return links, nil
}

// defaultRouteLinks returns the indexes of the links a default route leaves through,
// next hops of multipath routes included.
func defaultRouteLinks(routes []netlink.Route) map[int]bool {
	out := map[int]bool{}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.LinkIndex > 0 {
			out[r.LinkIndex] = true
		}
		for _, nh := range r.MultiPath {
			out[nh.LinkIndex] = true
		}
	}
	return out
}

// Watch implements Host with a netlink link subscription.
func (NetlinkHost) Watch(ctx context.Context) (<-chan struct{}, error) {
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	opts := netlink.LinkSubscribeOptions{ErrorCallback: func(err error) {
		if ctx.Err() == nil { // else the socket was closed on purpose
			slog.WarnContext(ctx, "nic driver: link subscription", "err", err)
		}
	}}
	if err := netlink.LinkSubscribeWithOptions(updates, done, opts); err != nil {
		close(done)
		return nil, fmt.Errorf("subscribe to links: %w", err)
	}
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		defer func() {
			close(done) // closes the socket; netlink then closes updates
			for range updates {
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-updates:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, nil
}
