package dhcp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/dhcp/dhcptest"
	"github.com/multinet/multinet/internal/testbed"
)

// TestOldSandboxDelDuringNewSandboxAddKeepsTheLease: a pod's new sandbox is in the middle of
// its DHCP conversation (the server has ACKed the address the old sandbox had, to the same
// client identifier, from the pod UID) when the runtime's DEL of the old sandbox comes. The
// DEL must not release the address the new sandbox is getting, and must still drop the old
// sandbox's own lease.
func TestOldSandboxDelDuringNewSandboxAddKeepsTheLease(t *testing.T) {
	testbed.RequireRoot(t)
	srv := dhcptest.New(t, 30, "--no-ping")
	dir := t.TempDir()
	m, err := New(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	t.Cleanup(m.Wait)
	t.Cleanup(cancel)

	const uid = "6f1c7d2e-0b9a-4c3d-8e5f-112233445566"
	oldNS, newNS := testbed.NewNetNS(t), testbed.NewNetNS(t)
	srv.Plug(t, oldNS, "net1")
	srv.Plug(t, newNS, "net1")
	old := podRequest(oldNS, "web", "old"+testbed.RandomID(), uid)
	ip := addLease(t, m, old)

	// The new sandbox's ADD stops once it has its ACK; the old sandbox's DEL says when it is
	// about to wait for the client identifier (not at all before the fix).
	acked, resume, waits := make(chan string), make(chan struct{}), make(chan struct{})
	m.hooks.acquired = func(l *Lease) {
		if l.Netns == newNS.Path() {
			acked <- l.IP().String()
			<-resume
		}
	}
	m.hooks.identityWait = func(l *Lease) {
		if l.Netns == oldNS.Path() {
			close(waits)
		}
	}
	sb := podRequest(newNS, "web", "new"+testbed.RandomID(), uid)
	added := make(chan error, 1)
	go func() { _, err := m.Add(ctx, sb); added <- err }()
	if got := <-acked; got != ip {
		close(resume)
		t.Fatalf("the server ACKed %s to the new sandbox, the old one has %s: the premise does not hold", got, ip)
	}
	deleted := make(chan error, 1)
	go func() { deleted <- m.Del(ctx, old) }()
	select {
	case <-waits: // the DEL waits for the new sandbox's conversation to end
	case err := <-deleted: // the DEL went ahead in the middle of it
		deleted <- err
	}
	close(resume)
	if err := <-added; err != nil {
		t.Fatalf("ADD of the new sandbox: %v", err)
	}
	if err := <-deleted; err != nil {
		t.Fatalf("DEL of the old sandbox: %v", err)
	}

	// A third client's conversation, after the DEL: the server has handled whatever the DEL
	// sent before it answers this one.
	otherNS := testbed.NewNetNS(t)
	srv.Plug(t, otherNS, "net1")
	addLease(t, m, podRequest(otherNS, "other", "other"+testbed.RandomID(), "7a2b3c4d-5e6f-4a1b-9c8d-aabbccddeeff"))
	h := m.lookup(key(sb.ContainerID, sb.IfName))
	if h == nil || h.get().ack.YourIPAddr.String() != ip {
		t.Fatalf("the new sandbox does not hold %s", ip)
	}
	if l, ok := srv.LeaseOf(t, ip); !ok || l.MAC != h.get().HWAddr {
		t.Errorf("the server's lease of %s: %+v (found %v), want the new sandbox's (MAC %s): the old DEL released it\n%s",
			ip, l, ok, h.get().HWAddr, srv.Log())
	}
	if l, err := m.store.load(old.ContainerID, old.IfName); l != nil || err != nil || m.lookup(key(old.ContainerID, old.IfName)) != nil {
		t.Errorf("the old sandbox's lease is still kept (file %v, %v)", l != nil, err)
	}
}

// podRequest is the plugin's request for the interface net1 in netns of pod default/name.
func podRequest(netns ns.NetNS, name, containerID, uid string) *cniapi.Request {
	return &cniapi.Request{Command: "ADD", ContainerID: containerID, Netns: netns.Path(), IfName: "net1",
		Args:   fmt.Sprintf("K8S_POD_NAMESPACE=default;K8S_POD_NAME=%s;K8S_POD_UID=%s", name, uid),
		Config: json.RawMessage(`{"cniVersion":"1.0.0","name":"lan","type":"macvlan","ipam":{"type":"multinet-dhcp"}}`)}
}

// addLease runs ADD and returns the address the result gives.
func addLease(t *testing.T, m *Manager, req *cniapi.Request) string {
	t.Helper()
	raw, err := m.Add(t.Context(), req)
	if err != nil {
		t.Fatalf("ADD of %s: %v", req.ContainerID, err)
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || len(res.IPs) != 1 {
		t.Fatalf("ADD of %s: result %s: %v", req.ContainerID, raw, err)
	}
	ip, _, _ := strings.Cut(res.IPs[0].Address, "/")
	return ip
}
