package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/ipam/blocks"
	"github.com/multinet/multinet/internal/podinfo"
	"github.com/multinet/multinet/internal/testbed"
)

// TestManagersOnARealAPIServer runs several nodes' managers in one process against a real
// kube-apiserver with deploy/crds installed (no root, no network namespaces): every node has
// its own record directory and its own IPBlock informer, as on a cluster. One control plane
// serves every subtest; each subtest uses its own network_name, so its own pool.
func TestManagersOnARealAPIServer(t *testing.T) {
	cp := testbed.StartControlPlane(t)
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = 50, 100 // as multinetd's
	api, err := blocks.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{cp: cp, api: api}
	t.Run("500 ADDs on 10 nodes at once: no duplicates; DEL frees every one", w.testNoDuplicates)
	t.Run("a full pool: the last block raced for, borrowed by share, then exhausted", w.testBorrowThenExhausted)
	t.Run("requested addresses, in own and others' blocks", w.testRequested)
	t.Run("a StatefulSet pod gets its address back", w.testSticky)
	t.Run("restart reloads records; a crash's stray entry is removed", w.testRestart)
	t.Run("a pod gone without DEL is reclaimed after the grace period", w.testGonePod)
	t.Run("a deleted node's addresses and blocks are reclaimed", w.testDeadNode)
	t.Run("idle nodes reconcile without asking about nodes", w.testIdleReconcile)
	t.Run("dual stack, Whereabouts keys", w.testDualStack)
	t.Run("bad input: clear errors, nothing allocated", w.testBadInput)
	t.Run("a reconciler's stale release leaves the address's new owner alone", w.testStaleReclaim)
	t.Run("GC's stale release leaves the address's new owner alone", w.testStaleGC)
	t.Run("a hold's expiry leaves it alone once its pod took it back", w.testStaleHoldExpiry)
	t.Run("two holds of one pod and interface both expire", w.testTwoHolds)
	t.Run("a node restarted without records still shares its block", w.testRestartWithoutRecords)
	t.Run("an unreadable record keeps its address reserved", w.testUnreadableRecord)
	t.Run("a re-plug on another network gets that network's address", w.testReplugOtherNetwork)
	t.Run("the StatefulSet test failing fails the ADD with code 11", w.testStatefulSetLookupFails)
	t.Run("records without a pod UID are reclaimed once their pod is gone", w.testNoUIDRecords)
}

type world struct {
	cp  *testbed.ControlPlane
	api blocks.Client
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fast settings: the write-back runs often, the reconciler only when a test calls it.
var fast = Settings{FlushInterval: 30 * time.Millisecond, ShareWait: 10 * time.Second, Grace: time.Minute,
	ReclaimInterval: time.Hour, NoSync: true}

// node starts a node's manager with its own record directory (dir, else a new one).
func (w *world) node(t *testing.T, name, dir string, deps Deps) *Manager {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if deps.API == nil {
		deps.API = w.api
	}
	if deps.Log == nil {
		deps.Log = quiet
	}
	m, err := New(name, dir, fast, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	t.Cleanup(cancel)
	return m
}

// conf is a network configuration of a bridge whose ipam is multinet-ipam with these keys.
func conf(network, ipam string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"bridge","ipam":{"type":"multinet-ipam",%s}}`,
		network, ipam))
}

type pod struct{ ns, name, uid string }

func req(command string, c json.RawMessage, cid string, p pod) *cniapi.Request {
	return &cniapi.Request{Command: command, ContainerID: cid, IfName: "net1", Netns: "/var/run/netns/" + cid,
		Args:   fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_UID=%s", p.ns, p.name, p.uid),
		Config: c}
}

// add runs ADD and returns the addresses of the result.
func add(t *testing.T, m *Manager, c json.RawMessage, cid string, p pod) []netip.Prefix {
	t.Helper()
	out, err := m.Add(testbed.Ctx(t), req("ADD", c, cid, p))
	if err != nil {
		t.Fatalf("ADD %s on %s: %v", cid, m.node, err)
	}
	return addrsOf(t, out)
}

func addrsOf(t testing.TB, out json.RawMessage) []netip.Prefix {
	t.Helper()
	var res types100.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("result %s: %v", out, err)
	}
	var ps []netip.Prefix
	for _, ip := range res.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		ones, _ := ip.Address.Mask.Size()
		ps = append(ps, netip.PrefixFrom(a.Unmap(), ones))
	}
	return ps
}

func del(t *testing.T, m *Manager, c json.RawMessage, cid string, p pod) {
	t.Helper()
	if err := m.Del(testbed.Ctx(t), req("DEL", c, cid, p)); err != nil {
		t.Fatalf("DEL %s on %s: %v", cid, m.node, err)
	}
}

// flushAll writes every node's blocks back.
func flushAll(t testing.TB, ms ...*Manager) {
	t.Helper()
	for _, m := range ms {
		m.Flush(testbed.Ctx(t))
	}
}

// poolBlocks lists the IPBlocks of the pools of network_name nn, fresh from the API server.
func (w *world) poolBlocks(t *testing.T, nn string) []blocks.IPBlock {
	t.Helper()
	l, err := w.api.List(testbed.Ctx(t), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []blocks.IPBlock
	for _, b := range l.Items {
		if strings.HasPrefix(b.Spec.Pool, nn+"/") {
			out = append(out, b)
		}
	}
	return out
}

// allocated is every allocation of the pool's blocks, address to node.
func (w *world) allocated(t *testing.T, nn string) map[netip.Addr]string {
	t.Helper()
	out := map[netip.Addr]string{}
	for _, b := range w.poolBlocks(t, nn) {
		for k, e := range b.Spec.Allocations {
			a := netip.MustParseAddr(k)
			if prev, dup := out[a]; dup {
				t.Errorf("%s is in two blocks (nodes %s and %s)", a, prev, e.Node)
			}
			out[a] = e.Node
		}
		if b.Spec.Used != len(b.Spec.Allocations) {
			t.Errorf("block %s: used %d, %d allocations", b.Name, b.Spec.Used, len(b.Spec.Allocations))
		}
	}
	return out
}

// eventually polls cond until it holds or 15 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(15 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within 15s", what)
		}
	}
}

func (w *world) testNoDuplicates(t *testing.T) {
	const nodes, perNode = 10, 50
	c := conf("storage", `"range":"10.10.0.0/22","network_name":"nodup"`)
	var ms []*Manager
	for i := range nodes {
		ms = append(ms, w.node(t, fmt.Sprintf("node-%02d", i), "", Deps{}))
	}
	type got struct {
		node, cid string
		addr      netip.Prefix
	}
	var (
		mu   sync.Mutex
		all  []got
		wg   sync.WaitGroup
		errs atomic.Int32
	)
	for i, m := range ms {
		for j := range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cid := fmt.Sprintf("nodup-%d-%d", i, j)
				out, err := m.Add(testbed.Ctx(t), req("ADD", c, cid, pod{"default", cid, cid}))
				if err != nil {
					errs.Add(1)
					t.Errorf("ADD %s on %s: %v", cid, m.node, err)
					return
				}
				mu.Lock()
				all = append(all, got{m.node, cid, addrsOf(t, out)[0]})
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if errs.Load() > 0 {
		t.FailNow()
	}
	seen := map[netip.Addr]got{}
	for _, g := range all {
		if prev, dup := seen[g.addr.Addr()]; dup {
			t.Errorf("%s given twice: %s on %s and %s on %s", g.addr, prev.cid, prev.node, g.cid, g.node)
		}
		seen[g.addr.Addr()] = g
		if g.addr.Bits() != 22 || !netip.MustParsePrefix("10.10.0.0/22").Contains(g.addr.Addr()) {
			t.Errorf("%s: not an address of 10.10.0.0/22 with its prefix", g.addr)
		}
	}
	if len(seen) != nodes*perNode {
		t.Fatalf("%d distinct addresses for %d ADDs", len(seen), nodes*perNode)
	}
	flushAll(t, ms...)
	onAPI := w.allocated(t, "nodup")
	for a, g := range seen {
		if onAPI[a] != g.node {
			t.Errorf("%s (%s on %s): the blocks say %q", a, g.cid, g.node, onAPI[a])
		}
	}
	if len(onAPI) != len(seen) {
		t.Errorf("the blocks list %d addresses, %d were handed out", len(onAPI), len(seen))
	}
	// ADD again of an interface that has its address returns the same one.
	first := ms[slices.IndexFunc(ms, func(m *Manager) bool { return m.node == all[0].node })]
	if again := add(t, first, c, all[0].cid, pod{"default", all[0].cid, all[0].cid}); again[0] != all[0].addr {
		t.Errorf("second ADD of %s: %s, first gave %s", all[0].cid, again[0], all[0].addr)
	}
	for _, g := range all {
		m := ms[slices.IndexFunc(ms, func(m *Manager) bool { return m.node == g.node })]
		del(t, m, c, g.cid, pod{"default", g.cid, g.cid})
		del(t, m, c, g.cid, pod{"default", g.cid, g.cid}) // DEL twice is fine
	}
	flushAll(t, ms...)
	if left := w.allocated(t, "nodup"); len(left) != 0 {
		t.Errorf("after every DEL the blocks still list %d addresses: %v", len(left), left)
	}
	for _, m := range ms {
		if n := len(records(t, m)); n != 0 {
			t.Errorf("%s keeps %d record files after every DEL", m.node, n)
		}
	}
}

func records(t *testing.T, m *Manager) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(m.store.dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func (w *world) testBorrowThenExhausted(t *testing.T) {
	// 10.20.0.0/28 in /29 blocks: .1-.7 and .8-.14 usable (14 addresses, 2 blocks).
	c := conf("full", `"range":"10.20.0.0/28","network_name":"full","block_size":29`)
	a, b := w.node(t, "full-a", "", Deps{}), w.node(t, "full-b", "", Deps{})
	var wg sync.WaitGroup
	got := make(chan netip.Prefix, 14)
	for i := range 14 {
		m := a
		if i%2 == 1 {
			m = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cid := fmt.Sprintf("full-%d", i)
			out, err := m.Add(testbed.Ctx(t), req("ADD", c, cid, pod{"default", cid, cid}))
			if err != nil {
				t.Errorf("ADD %s on %s: %v", cid, m.node, err)
				return
			}
			got <- addrsOf(t, out)[0]
		}()
	}
	wg.Wait()
	close(got)
	seen := map[netip.Prefix]bool{}
	for p := range got {
		if seen[p] {
			t.Errorf("%s given twice", p)
		}
		seen[p] = true
	}
	if len(seen) != 14 {
		t.Fatalf("%d addresses for 14 ADDs in a pool of 14", len(seen))
	}
	_, err := b.Add(testbed.Ctx(t), req("ADD", c, "full-14", pod{"default", "full-14", "u14"}))
	if err == nil {
		t.Fatalf("ADD in a full pool of 14 after 14 ADDs succeeded")
	}
	ce := ToCNI(err)
	if !errors.Is(err, ErrExhausted) || ce.Code != types.ErrTryAgainLater ||
		!strings.Contains(err.Error(), `no IP addresses available in range 10.20.0.1-10.20.0.14/28 (pool "full/v4")`) ||
		!strings.Contains(err.Error(), "default/full-14") || !strings.Contains(err.Error(), `network "full"`) {
		t.Fatalf("ADD in a full pool: %v (CNI code %d); want ErrExhausted naming the pool, pod and network, code 11", err, ce.Code)
	}
	if n := len(records(t, b)); n != 7 {
		t.Errorf("full-b keeps %d records after a failed ADD, want its 7", n)
	}
	flushAll(t, a, b)
	if n := len(w.allocated(t, "full")); n != 14 {
		t.Errorf("the blocks list %d addresses, want 14", n)
	}
	// One DEL on a frees an address; b gets it (the block is shared now, or b's own).
	del(t, a, c, "full-0", pod{"default", "full-0", "full-0"})
	flushAll(t, a)
	eventually(t, "the freed address reaches full-b", func() bool {
		_, err := b.Add(testbed.Ctx(t), req("ADD", c, "full-15", pod{"default", "full-15", "u15"}))
		return err == nil
	})
}

func (w *world) testRequested(t *testing.T) {
	c := conf("static", `"range":"10.30.0.0/24","network_name":"static"`)
	withIP := func(ip string) json.RawMessage {
		return json.RawMessage(strings.Replace(string(c), `"type":"bridge"`, `"type":"bridge","runtimeConfig":{"ips":["`+ip+`"]}`, 1))
	}
	a, b := w.node(t, "static-a", "", Deps{}), w.node(t, "static-b", "", Deps{})
	first := add(t, a, c, "st-1", pod{"default", "st-1", "u1"})[0]
	// an address of a's block, asked for on b: b borrows it by compare-and-swap
	want := first.Addr().Next().Next()
	if got := add(t, b, withIP(want.String()+"/24"), "st-2", pod{"default", "st-2", "u2"})[0]; got.Addr() != want {
		t.Errorf("requested %s on static-b, got %s", want, got)
	}
	// a now gives the next free address, not the one b took
	next := add(t, a, c, "st-3", pod{"default", "st-3", "u3"})[0]
	if next.Addr() == want {
		t.Errorf("static-a handed out %s, which static-b holds", want)
	}
	// asking for an address in use names its holder; CNI code 11 (its pod may go away)
	_, err := a.Add(testbed.Ctx(t), req("ADD", withIP(want.String()), "st-4", pod{"default", "st-4", "u4"}))
	if !errors.Is(err, ErrTaken) || !strings.Contains(err.Error(), "default/st-2") || ToCNI(err).Code != types.ErrTryAgainLater {
		t.Errorf("ADD asking for %s held by st-2: %v", want, err)
	}
	_, err = a.Add(testbed.Ctx(t), req("ADD", withIP(first.Addr().String()), "st-5", pod{"default", "st-5", "u5"}))
	if !errors.Is(err, ErrTaken) || !strings.Contains(err.Error(), "default/st-1") {
		t.Errorf("ADD asking for %s held by st-1 on the same node: %v", first.Addr(), err)
	}
	_, err = a.Add(testbed.Ctx(t), req("ADD", withIP("10.30.0.255"), "st-6", pod{"default", "st-6", "u6"}))
	if ToCNI(err).Code != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "10.30.0.255") {
		t.Errorf("ADD asking for the broadcast address: %v", err)
	}
	_, err = a.Add(testbed.Ctx(t), req("ADD", withIP("10.31.0.5"), "st-7", pod{"default", "st-7", "u7"}))
	if ToCNI(err).Code != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "none of the network's ranges") {
		t.Errorf("ADD asking for an address outside the range: %v", err)
	}
	flushAll(t, a, b)
	on := w.allocated(t, "static")
	if on[want] != "static-b" || on[first.Addr()] != "static-a" || on[next.Addr()] != "static-a" || len(on) != 3 {
		t.Errorf("blocks list %v; want %s on static-a, %s on static-b, %s on static-a", on, first.Addr(), want, next.Addr())
	}
}

// pods is the manager's view of pods (its edge to podinfo).
type pods struct {
	mu  sync.Mutex
	m   map[string]*corev1.Pod // namespace/name
	err error                  // every lookup fails with it (the API server is not reachable)
}

func (p *pods) Pod(_ context.Context, ns, name, uid string) (*corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pod := p.m[ns+"/"+name]
	switch {
	case p.err != nil:
		return nil, fmt.Errorf("get pod %s/%s: %w", ns, name, p.err)
	case pod == nil:
		return nil, fmt.Errorf("pod %s/%s: %w", ns, name, podinfo.ErrNotFound)
	case uid != "" && string(pod.UID) != uid:
		return nil, fmt.Errorf("pod %s/%s: %w", ns, name, podinfo.ErrStaleSandbox)
	}
	return pod, nil
}

func (p *pods) set(ns, name, uid, controller string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]*corev1.Pod{}
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: k8stypes.UID(uid)}}
	if controller != "" {
		yes := true
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: controller, Name: "x", UID: "c", Controller: &yes}}
	}
	p.m[ns+"/"+name] = pod
}

func (p *pods) setPod(pod *corev1.Pod) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]*corev1.Pod{}
	}
	p.m[pod.Namespace+"/"+pod.Name] = pod
}

func (p *pods) drop(ns, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, ns+"/"+name)
}

func (w *world) testSticky(t *testing.T) {
	c := conf("sts", `"range":"10.40.0.0/24","network_name":"sts"`)
	ps := &pods{}
	m := w.node(t, "sts-a", "", Deps{Pods: ps})
	ps.set("db", "db-0", "uid-1", "StatefulSet")
	ps.set("db", "web-1", "uid-w", "ReplicaSet")
	first := add(t, m, c, "sts-c1", pod{"db", "db-0", "uid-1"})[0]
	del(t, m, c, "sts-c1", pod{"db", "db-0", "uid-1"})
	// while db-0 is away its address is held: another pod does not get it
	other := add(t, m, c, "web-c1", pod{"db", "web-1", "uid-w"})[0]
	if other == first {
		t.Fatalf("%s was held for db-0 and given to web-1", first)
	}
	flushAll(t, m)
	var held *blocks.Allocation
	for _, b := range w.poolBlocks(t, "sts") {
		if e, ok := b.Spec.Allocations[first.Addr().String()]; ok {
			held = &e
		}
	}
	if held == nil || held.HeldUntil == nil || held.Pod != "db/db-0" {
		t.Errorf("the block shows %+v for the held %s, want a hold for db/db-0", held, first)
	}
	// db-0 comes back (new UID, new sandbox): same address
	ps.set("db", "db-0", "uid-2", "StatefulSet")
	if again := add(t, m, c, "sts-c2", pod{"db", "db-0", "uid-2"})[0]; again != first {
		t.Errorf("db-0 came back with %s, had %s", again, first)
	}
	// db-0 asks for its held address by "ips" (a static IP in its annotation): it gets it
	del(t, m, c, "sts-c2", pod{"db", "db-0", "uid-2"})
	ps.set("db", "db-0", "uid-3", "StatefulSet")
	withIP := json.RawMessage(strings.Replace(string(c), `"type":"bridge"`, `"type":"bridge","runtimeConfig":{"ips":["`+first.Addr().String()+`"]}`, 1))
	if again := add(t, m, withIP, "sts-c3", pod{"db", "db-0", "uid-3"})[0]; again != first {
		t.Errorf("db-0 asking for its held %s got %s", first, again)
	}
	// web-1 (a ReplicaSet's) frees its address on DEL
	del(t, m, c, "web-c1", pod{"db", "web-1", "uid-w"})
	if n := len(records(t, m)); n != 1 {
		t.Errorf("%d records after web-1's DEL, want db-0's only", n)
	}
	// a hold expires
	del(t, m, c, "sts-c3", pod{"db", "db-0", "uid-3"})
	m.Reconcile(testbed.Ctx(t), time.Now().Add(11*time.Minute))
	if n := len(records(t, m)); n != 0 {
		t.Errorf("%d records after the hold expired", n)
	}
}

func (w *world) testRestart(t *testing.T) {
	c := conf("restart", `"range":"10.50.0.0/24","network_name":"restart"`)
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	m1, err := New("restart-a", dir, fast, Deps{API: w.api, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	m1.Start(ctx)
	got := add(t, m1, c, "rs-1", pod{"default", "rs-1", "u1"})[0]
	stop() // multinetd stops; its last write-back may or may not have happened
	time.Sleep(100 * time.Millisecond)

	// A crash between a compare-and-swap and the record: the block lists an address of
	// the node that it has no record of.
	blks := w.poolBlocks(t, "restart")
	if len(blks) != 1 {
		t.Fatalf("%d blocks, want 1", len(blks))
	}
	stray := blks[0].DeepCopy()
	if stray.Spec.Allocations == nil {
		stray.Spec.Allocations = map[string]blocks.Allocation{}
	}
	lost := netip.MustParsePrefix(stray.Spec.CIDR).Addr()
	for range 60 {
		lost = lost.Next()
	}
	stray.Spec.Allocations[lost.String()] = blocks.Allocation{Node: "restart-a", Pod: "default/lost", ContainerID: "lost"}
	stray.Recount(stray.Spec.Free - 1)
	if _, err := w.api.Update(testbed.Ctx(t), stray); err != nil {
		t.Fatal(err)
	}

	m2 := w.node(t, "restart-a", dir, Deps{})
	if again := add(t, m2, c, "rs-1", pod{"default", "rs-1", "u1"})[0]; again != got {
		t.Errorf("after a restart ADD of rs-1 gave %s, it had %s", again, got)
	}
	next := add(t, m2, c, "rs-2", pod{"default", "rs-2", "u2"})[0]
	if next == got {
		t.Errorf("after a restart %s was handed out twice", got)
	}
	eventually(t, "the stray entry removed and both addresses listed", func() bool {
		on := w.allocated(t, "restart")
		_, stray := on[lost]
		return !stray && on[got.Addr()] == "restart-a" && on[next.Addr()] == "restart-a" && len(on) == 2
	})
}

func (w *world) testGonePod(t *testing.T) {
	c := conf("gone", `"range":"10.60.0.0/24","network_name":"gone"`)
	ps := &pods{}
	m := w.node(t, "gone-a", "", Deps{Pods: ps})
	ps.set("default", "live", "u-live", "")
	ps.set("default", "dead", "u-dead", "")
	add(t, m, c, "g-live", pod{"default", "live", "u-live"})
	add(t, m, c, "g-dead", pod{"default", "dead", "u-dead"})
	add(t, m, c, "g-old", pod{"default", "live", "u-old"}) // an older pod of that name
	ps.drop("default", "dead")
	now := time.Now()
	m.Reconcile(testbed.Ctx(t), now)
	if n := len(records(t, m)); n != 3 {
		t.Fatalf("%d records right after the pods went, want 3 (grace period)", n)
	}
	m.Reconcile(testbed.Ctx(t), now.Add(2*time.Minute))
	if n := len(records(t, m)); n != 1 {
		t.Fatalf("%d records after the grace period, want the live pod's only", n)
	}
	if err := m.Check(testbed.Ctx(t), req("CHECK", c, "g-live", pod{"default", "live", "u-live"})); err != nil {
		t.Errorf("CHECK of the live pod: %v", err)
	}
	if err := m.Check(testbed.Ctx(t), req("CHECK", c, "g-dead", pod{"default", "dead", "u-dead"})); err == nil {
		t.Errorf("CHECK of the reclaimed pod passed")
	}
}

func (w *world) createNode(t *testing.T, name string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := w.cp.Client.CoreV1().Nodes().Create(testbed.Ctx(t), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (w *world) testDeadNode(t *testing.T) {
	c := conf("dead", `"range":"10.70.0.0/24","network_name":"dead","block_size":28`)
	w.createNode(t, "dead-live")
	w.createNode(t, "dead-gone")
	nodes := w.nodes(t, nil)
	live := w.node(t, "dead-live", "", Deps{Nodes: nodes})
	gone := w.node(t, "dead-gone", "", Deps{Nodes: w.nodes(t, nil)})
	liveAddr := add(t, live, c, "d-live", pod{"default", "d-live", "u"})[0]
	for i := range 3 {
		add(t, gone, c, fmt.Sprintf("d-gone-%d", i), pod{"default", fmt.Sprintf("d-gone-%d", i), "u"})
	}
	// one address of the gone node in the live node's block (borrowed by request)
	withIP := strings.Replace(string(c), `"type":"bridge"`, `"type":"bridge","runtimeConfig":{"ips":["`+liveAddr.Addr().Next().String()+`"]}`, 1)
	add(t, gone, json.RawMessage(withIP), "d-gone-b", pod{"default", "d-gone-b", "u"})
	flushAll(t, live, gone)
	if n := len(w.allocated(t, "dead")); n != 5 {
		t.Fatalf("%d allocations before the node went, want 5", n)
	}
	// a pod still bound to the node keeps its addresses
	p := testbed.BusyboxPod("default", "d-bound", nil)
	p.Spec.NodeName = "dead-gone"
	if _, err := w.cp.Client.CoreV1().Pods("default").Create(testbed.Ctx(t), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := w.cp.Client.CoreV1().Nodes().Delete(testbed.Ctx(t), "dead-gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the live node's Node informer without the deleted node", func() bool {
		ok, err := nodes.NodeExists(testbed.Ctx(t), "dead-gone")
		return err == nil && !ok
	})
	live.Reconcile(testbed.Ctx(t), time.Now())
	if n := len(w.allocated(t, "dead")); n != 5 {
		t.Fatalf("%d allocations while a pod is still bound to the deleted node, want 5", n)
	}
	zero := int64(0)
	if err := w.cp.Client.CoreV1().Pods("default").Delete(testbed.Ctx(t), "d-bound", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted node's pod gone", func() bool {
		has, err := w.nodes(t, nil).PodsOnNode(testbed.Ctx(t), "dead-gone")
		return err == nil && !has
	})
	nodes.now = func() time.Time { return time.Now().Add(podsWaitMin) } // the node's back-off past
	var stale []*blocks.IPBlock
	for _, b := range blocksOf(live, "dead/v4") {
		stale = append(stale, b.DeepCopy())
	}
	live.Reconcile(testbed.Ctx(t), time.Now())
	on := w.allocated(t, "dead")
	if len(on) != 1 || on[liveAddr.Addr()] != "dead-live" {
		t.Errorf("after the node went the blocks list %v, want %s of dead-live only", on, liveAddr.Addr())
	}
	// a reclaim from a copy older than another node's reclaim finds nothing left to do
	for _, b := range stale {
		live.reclaimBlock(testbed.Ctx(t), b, "dead-gone")
	}
	if again := w.allocated(t, "dead"); len(again) != 1 || len(w.poolBlocks(t, "dead")) != 1 {
		t.Errorf("a reclaim from a stale copy left %v in %d blocks, want %s of dead-live in one", again,
			len(w.poolBlocks(t, "dead")), liveAddr.Addr())
	}
	for _, b := range w.poolBlocks(t, "dead") {
		if b.Spec.Node == "dead-gone" {
			t.Errorf("block %s still belongs to the deleted node", b.Name)
		}
	}
	// the freed addresses are handed out again
	for i := range 3 {
		add(t, live, c, fmt.Sprintf("d-new-%d", i), pod{"default", fmt.Sprintf("d-new-%d", i), "u"})
	}
}

func (w *world) testDualStack(t *testing.T) {
	// Whereabouts' keys as they are: only the type differs from a Whereabouts NAD (and
	// block sizes of the whole ranges, so that the addresses come lowest first).
	c := conf("dual", `"network_name":"dual","block_size":24,"block_size_v6":64,"range":"10.80.0.0/24","range_start":"10.80.0.10","exclude":["10.80.0.12/31"],
		"ipRanges":[{"range":"fd00:80::/64"}],"gateway":"10.80.0.1","routes":[{"dst":"10.81.0.0/16"}]`)
	m := w.node(t, "dual-a", "", Deps{})
	var got [][]netip.Prefix
	for i := range 4 {
		got = append(got, add(t, m, c, fmt.Sprintf("ds-%d", i), pod{"default", fmt.Sprintf("ds-%d", i), "u"}))
	}
	want := []string{"10.80.0.10/24 fd00:80::1/64", "10.80.0.11/24 fd00:80::2/64", "10.80.0.14/24 fd00:80::3/64", "10.80.0.15/24 fd00:80::4/64"}
	for i, g := range got {
		var s []string
		for _, p := range g {
			s = append(s, p.String())
		}
		if strings.Join(s, " ") != want[i] {
			t.Errorf("ADD %d: %v, want %s", i, s, want[i])
		}
	}
	out, err := m.Add(testbed.Ctx(t), req("ADD", c, "ds-0", pod{"default", "ds-0", "u"}))
	if err != nil {
		t.Fatal(err)
	}
	var res types100.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Routes) != 1 || res.Routes[0].Dst.String() != "10.81.0.0/16" || res.IPs[0].Gateway.String() != "10.80.0.1" {
		t.Errorf("result routes %v, gateway %v; want 10.81.0.0/16 and 10.80.0.1", res.Routes, res.IPs[0].Gateway)
	}
	flushAll(t, m)
	if n := len(w.poolBlocks(t, "dual")); n != 2 {
		t.Errorf("%d blocks, want one IPv4 and one IPv6", n)
	}
}

func (w *world) testBadInput(t *testing.T) {
	m := w.node(t, "bad-a", "", Deps{})
	for _, c := range []struct {
		ipam, want string
	}{
		{`"range":"10.90.0.0/33"`, "10.90.0.0/33"},
		{`"network_name":"bad"`, "no range"},
		{`"range":"10.90.0.0/24","block_size":"big"`, "block_size"},
		{`"range":"10.90.0.0/24","sticky_hold":"forever"`, "sticky_hold"},
		{`"range":"10.90.0.0/24","rnage_start":"10.90.0.5"`, "rnage_start"},
	} {
		_, err := m.Add(testbed.Ctx(t), req("ADD", conf("bad", c.ipam), "bad-1", pod{"default", "bad", "u"}))
		if ToCNI(err).Code != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `network "bad"`) {
			t.Errorf("ipam {%s}: %v; want code 7 naming the network and %q", c.ipam, err, c.want)
		}
	}
	// a second network of one pool with another block size
	add(t, m, conf("bad", `"range":"10.91.0.0/24","network_name":"bad-size"`), "bs-1", pod{"default", "bs-1", "u"})
	_, err := m.Add(testbed.Ctx(t), req("ADD", conf("bad2", `"range":"10.91.0.0/24","network_name":"bad-size","block_size":28`),
		"bs-2", pod{"default", "bs-2", "u"}))
	if ToCNI(err).Code != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), `pool "bad-size/v4" has blocks of /26`) {
		t.Errorf("a second block size in one pool: %v", err)
	}
	del(t, m, conf("bad", `"range":"10.91.0.0/24","network_name":"bad-size"`), "bs-1", pod{"default", "bs-1", "u"})
	_, err = m.Add(testbed.Ctx(t), &cniapi.Request{Command: "ADD", Config: json.RawMessage(`{"name":`)})
	if ToCNI(err).Code != types.ErrInvalidNetworkConfig {
		t.Errorf("a config that is not JSON: %v", err)
	}
	if n := len(records(t, m)); n != 0 {
		t.Errorf("%d records after bad input", n)
	}
	if entries, _ := os.ReadDir(m.store.dir); len(entries) != 0 {
		t.Errorf("files left in the record directory: %v", entries)
	}
}

// counting counts the requests managers make to the API server, by verb; one counting
// serves several clients (of calls).
type counting struct {
	blocks.Client
	shared *counting // where of's copies count
	mu     sync.Mutex
	n      map[string]int
}

// of is c counting the requests of client.
func (c *counting) of(client blocks.Client) *counting { return &counting{Client: client, shared: c} }

func (c *counting) count(verb string) {
	if c.shared != nil {
		c = c.shared
	}
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[verb]++
	c.mu.Unlock()
}

func (c *counting) Create(ctx context.Context, b *blocks.IPBlock) (*blocks.IPBlock, error) {
	c.count("create")
	return c.Client.Create(ctx, b)
}

func (c *counting) Get(ctx context.Context, name string) (*blocks.IPBlock, error) {
	c.count("get")
	return c.Client.Get(ctx, name)
}

func (c *counting) Update(ctx context.Context, b *blocks.IPBlock) (*blocks.IPBlock, error) {
	c.count("update")
	return c.Client.Update(ctx, b)
}

func (c *counting) Delete(ctx context.Context, name string, uid k8stypes.UID, rv string) error {
	c.count("delete")
	return c.Client.Delete(ctx, name, uid, rv)
}

func (c *counting) List(ctx context.Context, opts metav1.ListOptions) (*blocks.IPBlockList, error) {
	c.count("list")
	return c.Client.List(ctx, opts)
}

func (c *counting) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	c.count("watch")
	return c.Client.Watch(ctx, opts)
}

func (c *counting) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}
