package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/ipam/blocks"
	"github.com/multinet/multinet/internal/status"
	"github.com/multinet/multinet/internal/testbed"
)

// TestClusterIPAM runs multinet-ipam as it runs on nodes: the plugin binary multinetd
// installs, forwarding to multinetd. Pods attached through the core path to a bridge network
// (addresses, network-status, traffic, the IPBlock claimed, a restart and a SIGKILL of
// multinetd, DEL after them); two multinetd processes with different node names sharing a
// pool while one is SIGKILLed in the middle of a burst; a full pool's error and pod Event.
// Root and the test bed.
func TestClusterIPAM(t *testing.T) {
	testbed.RequireRoot(t)
	cp := testbed.StartControlPlane(t)
	t.Run("PodsOnABridgeRestartAndKill9", func(t *testing.T) { testIPAMPods(t, cp) })
	t.Run("TwoNodesOneKilledMidBurst", func(t *testing.T) { testIPAMTwoNodes(t, cp) })
	t.Run("ExhaustedPoolFailsWithEvent", func(t *testing.T) { testIPAMExhausted(t, cp) })
}

func testIPAMPods(t *testing.T, cp *testbed.ControlPlane) {
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
	e.waitBlocksEmpty(t, "data-"+e.ID)
}

// waitBlocksEmpty waits until the IPBlocks of network_name nn (there are some) list no allocation.
func (e *env) waitBlocksEmpty(t *testing.T, nn string) {
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
		if len(last) > 0 && !slices.ContainsFunc(last, func(l string) bool { return !strings.HasSuffix(l, " used 0") }) {
			return
		}
	}
	t.Errorf("IPBlocks of %s: %v; want some, with no allocation", nn, last)
}

// ipamCall runs the multinet-ipam binary of e's CNI bin dir as a runtime would run an IPAM
// plugin, with the daemon's socket in the config (no pod: multinet-ipam needs none).
func (e *env) ipamCall(ctx context.Context, command, conf, cid string) (*types100.Result, error) {
	args := &invoke.Args{Command: command, ContainerID: cid, NetNS: "/var/run/netns/" + cid, IfName: "net1",
		Path: e.BinDir, PluginArgsStr: "IgnoreUnknown=1"}
	plugin := filepath.Join(e.BinDir, "multinet-ipam")
	if command == "DEL" {
		return nil, invoke.ExecPluginWithoutResult(ctx, plugin, []byte(conf), args, nil)
	}
	r, err := invoke.ExecPluginWithResult(ctx, plugin, []byte(conf), args, nil)
	if err != nil {
		return nil, err
	}
	return types100.NewResultFromResult(r)
}

// testIPAMTwoNodes: node-a and node-b (two multinetd processes) ADD 60 interfaces at once
// from one pool of /28 blocks; node-b is SIGKILLed in the middle and restarted, and the ADDs
// it failed are retried as a runtime would. No address is given twice. Then they DEL them all
// at once, node-b killed again in the middle: every record is gone, the blocks end empty.
func testIPAMTwoNodes(t *testing.T, cp *testbed.ControlPlane) {
	a := newEnv(t, cp)
	bFlags := []string{"--node-name", "node-b"}
	b := newEnv(t, cp, bFlags...)
	nn := "two-" + a.ID
	conf := func(e *env) string {
		return fmt.Sprintf(`{"cniVersion":"1.0.0","name":"two","ipam":{"type":"multinet-ipam","range":"10.79.0.0/25",
			"block_size":28,"network_name":%q,"socket":%q}}`, nn, e.Socket)
	}
	const n = 60 // of 126 addresses in 8 blocks
	owner := make([]*env, n)
	got := make([]netip.Addr, n)
	var wg sync.WaitGroup
	var killed sync.Once
	var done atomic.Int32
	for i := range n {
		e := a
		if i%2 == 1 {
			e = b
		}
		owner[i] = e
		wg.Add(1)
		go func() {
			defer wg.Done()
			cid := fmt.Sprintf("two-%s-%d", a.ID, i)
			for try := 0; ; try++ {
				res, err := e.ipamCall(testbed.Ctx(t), "ADD", conf(e), cid)
				if err == nil {
					got[i], _ = netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
					if done.Add(1) == n/3 {
						killed.Do(func() { b.Kill9(); b.Start(t, bFlags...) })
					}
					return
				}
				if try == 20 {
					t.Errorf("ADD %s on %s: %v", cid, e.ID, err)
					return
				}
				time.Sleep(200 * time.Millisecond) // the runtime retries a failed sandbox
			}
		}()
	}
	wg.Wait()
	if !strings.Contains(b.Log(), `"msg":"ipam records reloaded","component":"ipam"`) {
		t.Errorf("node-b was not killed with records and restarted:\n%s", b.Log())
	}
	seen := map[netip.Addr]int{}
	for i, ip := range got {
		if prev, dup := seen[ip]; dup && ip.IsValid() {
			t.Errorf("%s given to interface %d and %d", ip, prev, i)
		}
		seen[ip] = i
	}
	// DEL them all at once, node-b SIGKILLed again in the middle; failed DELs are retried
	var dels atomic.Int32
	killed = sync.Once{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cid := fmt.Sprintf("two-%s-%d", a.ID, i)
			for try := 0; ; try++ {
				_, err := owner[i].ipamCall(testbed.Ctx(t), "DEL", conf(owner[i]), cid)
				if err == nil {
					if dels.Add(1) == n/3 {
						killed.Do(func() { b.Kill9(); b.Start(t, bFlags...) })
					}
					return
				}
				if try == 20 {
					t.Errorf("DEL %s: %v", cid, err)
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	for _, e := range []*env{a, b} {
		recs, _ := filepath.Glob(filepath.Join(e.StateDir, "ipam", "*.json"))
		if len(recs) != 0 {
			t.Errorf("%s keeps %d records after every DEL", e.ID, len(recs))
		}
	}
	a.waitBlocksEmpty(t, nn)
}

// testIPAMExhausted: a pool of two addresses; the third pod's ADD fails with "try again later",
// the error names the range and the pool, and the pod has a Warning Event saying so.
func testIPAMExhausted(t *testing.T, cp *testbed.ControlPlane) {
	e := newEnv(t, cp)
	br := "mnix" + e.ID[:6]
	t.Cleanup(func() { testbed.DeleteLink(br) })
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"tiny","type":"bridge","bridge":%q,"isGateway":false,"ipMasq":false,
		"ipam":{"type":"multinet-ipam","range":"10.78.0.0/30","block_size":30,"network_name":"tiny-%s"}}`, br, e.ID)
	e.CP.CreateNAD(t, e.ns, "tiny", conf)
	var sbs []*testbed.Sandbox
	for i := range 2 {
		sb := e.NewSandbox(t, e.ns, fmt.Sprintf("t%d", i), map[string]string{networks: "tiny"})
		e.MustAdd(t, sb)
		sbs = append(sbs, sb)
	}
	sb := e.NewSandbox(t, e.ns, "t2", map[string]string{networks: "tiny"})
	_, err := e.Add(t, sb)
	var ce *types.Error
	if !errors.As(err, &ce) || ce.Code != types.ErrTryAgainLater ||
		!strings.Contains(err.Error(), `no IP addresses available in range 10.78.0.1-10.78.0.2/30 (pool "tiny-`+e.ID+`/v4")`) {
		t.Fatalf("ADD in a full pool: %v; want code 11 naming the range and pool", err)
	}
	e.wantWarning(t, sb, status.ReasonNetworkSetupFailed, "no IP addresses available in range 10.78.0.1-10.78.0.2/30")
	if err := e.Del(t, sb); err != nil {
		t.Errorf("DEL of the pod whose ADD failed: %v", err)
	}
	for _, sb := range sbs {
		e.MustDel(t, sb)
	}
}
