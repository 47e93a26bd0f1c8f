package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/ipam/blocks"
	"github.com/multinet/multinet/internal/testbed"
)

// TestClusterIPAM attaches pods through the core path to a bridge network whose IPAM is
// multinet-ipam (the plugin binary multinetd installs, forwarding to multinetd): addresses,
// network-status, traffic between the pods, the IPBlock the node claimed, a restart and a
// SIGKILL of multinetd with pods attached, and DEL after them. Root and the test bed.
func TestClusterIPAM(t *testing.T) {
	testbed.RequireRoot(t)
	cp := testbed.StartControlPlane(t)
	e := newEnv(t, cp)
	if _, err := os.Stat(filepath.Join(e.BinDir, "multinet-ipam")); err != nil {
		t.Fatalf("multinetd did not install multinet-ipam into the CNI bin dir: %v", err)
	}
	br := "mnip" + e.ID[:6]
	t.Cleanup(func() { testbed.DeleteLink(br) })
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"data","type":"bridge","bridge":%q,"isGateway":false,"ipMasq":false,
		"ipam":{"type":"multinet-ipam","range":"10.77.0.0/24","range_start":"10.77.0.10","network_name":"data-%s","block_size":28}}`,
		br, e.ID)
	e.CP.CreateNAD(t, e.ns, "data", conf)

	var sbs []*testbed.Sandbox
	var ips []net.IP
	for i := range 3 {
		sb := e.NewSandbox(t, e.ns, fmt.Sprintf("p%d", i), map[string]string{networks: "data"})
		e.MustAdd(t, sb)
		ip := testbed.IPv4(t, sb.Netns, "net1")
		if !strings.HasPrefix(ip.String(), "10.77.0.") || slices.ContainsFunc(ips, ip.Equal) {
			t.Fatalf("pod %d has %s on net1; have %v", i, ip, ips)
		}
		if st := e.NetworkStatus(t, sb, 2)[1]; !slices.Equal(st.IPs, []string{ip.String()}) {
			t.Errorf("network-status of pod %d: %+v, want ips [%s]", i, st, ip)
		}
		sbs, ips = append(sbs, sb), append(ips, ip)
	}
	if err := testbed.Ping(t, sbs[0].Netns, ips[1]); err != nil {
		t.Errorf("p0 cannot reach p1 at %s: %v", ips[1], err)
	}
	if err := e.Check(t, sbs[2]); err != nil { // the last pod: a port added to the bridge changes its MAC, which bridge's CHECK compares
		t.Errorf("CHECK: %v", err)
	}

	// a restart: the records are reloaded, the next pod gets a new address
	e.Stop()
	e.Start(t)
	sb := e.NewSandbox(t, e.ns, "p3", map[string]string{networks: "data"})
	e.MustAdd(t, sb)
	if ip := testbed.IPv4(t, sb.Netns, "net1"); slices.ContainsFunc(ips, ip.Equal) {
		t.Errorf("after a restart p3 got %s, which a running pod has (%v)", ip, ips)
	}
	sbs = append(sbs, sb)
	if !strings.Contains(e.Log(), `"msg":"ipam records reloaded","component":"ipam","count":3`) {
		t.Errorf("daemon log does not say it reloaded the 3 records:\n%s", e.Log())
	}

	// SIGKILL right after an ADD (before a write-back): DEL still frees the address
	e.Kill9()
	e.Start(t)
	for _, sb := range sbs {
		e.MustDel(t, sb)
		e.MustDel(t, sb) // twice is fine
	}
	recs, err := filepath.Glob(filepath.Join(e.StateDir, "ipam", "*.json"))
	if err != nil || len(recs) != 0 {
		t.Errorf("records left after every DEL: %v %v", recs, err)
	}
	// the block the node claimed lists nothing once written back
	e.waitBlockEmpty(t, "data-"+e.ID)
}

// waitBlockEmpty waits until the node's IPBlocks of network_name nn list no allocation.
func (e *env) waitBlockEmpty(t *testing.T, nn string) {
	t.Helper()
	api, err := blocks.NewClient(e.CP.Config)
	if err != nil {
		t.Fatal(err)
	}
	var last []string
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		l, err := api.List(testbed.Ctx(t), metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list IPBlocks: %v", err)
		}
		last = nil
		for _, b := range l.Items {
			if b.Spec.Network == nn {
				last = append(last, fmt.Sprintf("%s node %s used %d", b.Name, b.Spec.Node, b.Spec.Used))
			}
		}
		if len(last) > 0 && !slices.ContainsFunc(last, func(l string) bool { return !strings.HasSuffix(l, "node "+testbed.NodeName+" used 0") }) {
			return
		}
	}
	t.Errorf("IPBlocks of %s: %v; want the node's, with no allocation", nn, last)
}
