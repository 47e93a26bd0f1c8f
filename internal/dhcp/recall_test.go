package dhcp

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/multinet/multinet/internal/cniapi"
)

// givenUp is a lease of ip for pod ns/name (with uid) on net1 of network ns/lan.
func givenUp(t *testing.T, name, uid, ip string) *Lease {
	t.Helper()
	ack, err := dhcpv4.New(dhcpv4.WithYourIP(net.ParseIP(ip)))
	if err != nil {
		t.Fatal(err)
	}
	l := &Lease{ContainerID: "c-" + uid, IfName: "net1", Network: "ns/lan", Pod: podRef{Namespace: "ns", Name: name, UID: uid}}
	l.setACK(ack, time.Now())
	return l
}

func addRequest(name, uid, ifname string) *request {
	return &request{Request: &cniapi.Request{IfName: ifname}, network: "ns/lan",
		pod: podRef{Namespace: "ns", Name: name, UID: uid}}
}

// TestRecallAsksForThePodsLastAddress: the address is found for the pod's next sandbox, also
// with another UID (a pod recreated under its name) and after the daemon restarted, and not
// for another pod, interface or after the hold time.
func TestRecallAsksForThePodsLastAddress(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r, err := openRecall(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.remember(givenUp(t, "web", "uid-1", "10.40.0.7"), now); err != nil {
		t.Fatal(err)
	}
	r, err = openRecall(dir, now.Add(time.Minute)) // a daemon restart
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req  *request
		at   time.Duration
		want string
	}{
		{addRequest("web", "uid-1", "net1"), time.Minute, "10.40.0.7"},
		{addRequest("web", "uid-2", "net1"), time.Minute, "10.40.0.7"},
		{addRequest("web", "uid-1", "net2"), time.Minute, "<nil>"},
		{addRequest("db", "uid-3", "net1"), time.Minute, "<nil>"},
		{addRequest("", "", "net1"), time.Minute, "<nil>"},
		{addRequest("web", "uid-1", "net1"), recallHold + time.Second, "<nil>"},
	} {
		if got := r.lookup(c.req, now.Add(c.at)).String(); got != c.want {
			t.Errorf("pod %s (uid %s) on %s after %s: asks for %s, want %s", c.req.pod, c.req.pod.UID, c.req.IfName, c.at, got, c.want)
		}
	}
	if _, err := openRecall(dir, now.Add(recallHold+time.Minute)); err != nil {
		t.Fatal(err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("%d files left after the hold time", len(files))
	}
}

// TestRecallIsBounded: beyond recallMax the oldest addresses are dropped, on disk too.
func TestRecallIsBounded(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	r, err := openRecall(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recallMax + 10 {
		l := givenUp(t, fmt.Sprintf("p%d", i), "u", fmt.Sprintf("10.%d.%d.1", i/256, i%256))
		if err := r.remember(l, now.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if files, _ := os.ReadDir(dir); len(r.by) != recallMax || len(files) != recallMax {
		t.Errorf("%d remembered, %d files; want %d", len(r.by), len(files), recallMax)
	}
	if got := r.lookup(addRequest("p0", "u", "net1"), now); got != nil {
		t.Errorf("the oldest address (%s) is still remembered", got)
	}
	if got := r.lookup(addRequest(fmt.Sprint("p", recallMax+9), "u", "net1"), now); got == nil {
		t.Error("the newest address is not remembered")
	}
}
