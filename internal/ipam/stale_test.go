package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/multinet/multinet/internal/testbed"
)

// The subtests of TestManagersOnARealAPIServer for releases that act on a record that has
// changed since they looked (issue 21), and for the node's restart without records.

// keptByItsOwner checks, after a release that had looked at the records before a's owner
// took it, that a is still owner's (its record file and the ledger), and that the next ADD
// (container next, of pod p) gets another address.
func keptByItsOwner(t *testing.T, m *Manager, c json.RawMessage, poolID string, a netip.Addr, owner, next string, p pod) {
	t.Helper()
	if !owns(t, m, c, poolID, a, owner) {
		t.Errorf("a stale release took %s from container %s", a, owner)
	}
	if got := add(t, m, c, next, p)[0].Addr(); got == a {
		t.Errorf("%s handed out twice (container %s holds it)", a, owner)
	}
}

// owns reports whether the record of a on disk is the interface cid/net1's, and CHECK of it
// passes.
func owns(t *testing.T, m *Manager, c json.RawMessage, poolID string, a netip.Addr, cid string) bool {
	t.Helper()
	data, err := os.ReadFile(m.store.path(poolID, a))
	var r record
	if err == nil {
		err = json.Unmarshal(data, &r)
	}
	return err == nil && r.ContainerID == cid && m.Check(testbed.Ctx(t), req("CHECK", c, cid, pod{})) == nil
}

// recordOwners are the interfaces of m's record files.
func recordOwners(t *testing.T, m *Manager) []string {
	t.Helper()
	var out []string
	for _, f := range records(t, m) {
		data, err := os.ReadFile(f)
		var r record
		if err == nil {
			err = json.Unmarshal(data, &r)
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.owner())
	}
	return out
}

// reclaims counts the addresses the reconciler says it freed.
type reclaims struct {
	noObserver
	n atomic.Int32
}

func (o *reclaims) IPAMReclaimed(string) { o.n.Add(1) }

// testStaleReclaim: the reconciler looks at a gone pod's record; meanwhile the runtime's late
// DEL frees the address and a new pod's ADD takes it. The reconciler's release of the old
// record must leave the new pod's alone.
func (w *world) testStaleReclaim(t *testing.T) {
	c := conf("stale", `"range":"10.110.0.0/24","network_name":"stale"`)
	ps := &pods{}
	obs := &reclaims{}
	m := w.node(t, "stale-a", "", Deps{Pods: ps, Obs: obs})
	ps.set("default", "old", "u-old", "")
	ps.set("default", "new", "u-new", "")
	a := add(t, m, c, "s-old", pod{"default", "old", "u-old"})[0].Addr()
	ps.drop("default", "old")
	now := time.Now()
	m.Reconcile(testbed.Ctx(t), now) // seen gone
	fired := 0
	m.beforeReclaim = func(r *record) {
		if fired++; fired > 1 || r.ContainerID != "s-old" {
			return
		}
		del(t, m, c, "s-old", pod{"default", "old", "u-old"}) // the late DEL
		if got := add(t, m, c, "s-new", pod{"default", "new", "u-new"})[0].Addr(); got != a {
			t.Fatalf("the new pod got %s, want the freed %s (lowest free)", got, a)
		}
	}
	m.Reconcile(testbed.Ctx(t), now.Add(2*time.Minute))
	m.beforeReclaim = nil
	if fired == 0 {
		t.Fatal("the reconciler released nothing")
	}
	if n := obs.n.Load(); n != 0 {
		t.Errorf("the reconciler counts %d addresses reclaimed; the late DEL freed the only one", n)
	}
	keptByItsOwner(t, m, c, "stale/v4", a, "s-new", "s-next", pod{"default", "new2", ""})
	flushAll(t, m)
	if on := w.allocated(t, "stale"); on[a] != "stale-a" || len(on) != 2 {
		t.Errorf("the block lists %v; want %s and the next address", on, a)
	}

}

// testStaleGC: GC's list of valid attachments predates a DEL and an ADD that takes the freed
// address; GC's release of the old record must leave the new one alone.
func (w *world) testStaleGC(t *testing.T) {
	c := conf("stalegc", `"range":"10.119.0.0/24","network_name":"stalegc"`)
	m := w.node(t, "stalegc-a", "", Deps{})
	a := add(t, m, c, "g-old", pod{"default", "old", "u-old"})[0].Addr()
	add(t, m, c, "g-valid", pod{"default", "valid", "u-valid"})
	gc := req("GC", c, "", pod{})
	gc.Config = []byte(strings.Replace(string(c), `"type":"bridge"`,
		`"type":"bridge","cni.dev/valid-attachments":[{"containerID":"g-valid","ifname":"net1"}]`, 1))
	fired := 0
	m.beforeReclaim = func(r *record) {
		if fired++; fired > 1 || r.ContainerID != "g-old" {
			return
		}
		del(t, m, c, "g-old", pod{"default", "old", "u-old"})
		if got := add(t, m, c, "g-new", pod{"default", "new", "u-new"})[0].Addr(); got != a {
			t.Fatalf("the ADD after DEL got %s, want the freed %s", got, a)
		}
	}
	if err := m.GC(testbed.Ctx(t), gc); err != nil {
		t.Fatal(err)
	}
	m.beforeReclaim = nil
	if fired == 0 {
		t.Fatal("GC released nothing")
	}
	keptByItsOwner(t, m, c, "stalegc/v4", a, "g-new", "g-next", pod{"default", "next", ""})
}

// testStaleHoldExpiry: the reconciler finds a StatefulSet pod's hold expired; meanwhile the pod
// comes back and takes the held address. The expiry must not free it under the pod.
func (w *world) testStaleHoldExpiry(t *testing.T) {
	c := conf("stalehold", `"range":"10.111.0.0/24","network_name":"stalehold"`)
	ps := &pods{}
	obs := &reclaims{}
	m := w.node(t, "stalehold-a", "", Deps{Pods: ps, Obs: obs})
	ps.set("db", "db-0", "u1", "StatefulSet")
	a := add(t, m, c, "sh-1", pod{"db", "db-0", "u1"})[0].Addr()
	del(t, m, c, "sh-1", pod{"db", "db-0", "u1"})
	fired := 0
	m.beforeReclaim = func(*record) {
		if fired++; fired > 1 {
			return
		}
		ps.set("db", "db-0", "u2", "StatefulSet")
		if got := add(t, m, c, "sh-2", pod{"db", "db-0", "u2"})[0].Addr(); got != a {
			t.Fatalf("db-0 came back with %s, its hold is %s", got, a)
		}
	}
	m.Reconcile(testbed.Ctx(t), time.Now().Add(11*time.Minute))
	m.beforeReclaim = nil
	if fired == 0 {
		t.Fatal("no hold expired")
	}
	if n := obs.n.Load(); n != 0 {
		t.Errorf("%d holds counted expired; the only one was taken back", n)
	}
	keptByItsOwner(t, m, c, "stalehold/v4", a, "sh-2", "sh-3", pod{"db", "web", ""})
}

// testTwoHolds: two sandboxes of one StatefulSet pod both end in a hold on one interface; both
// expire.
func (w *world) testTwoHolds(t *testing.T) {
	c := conf("twoholds", `"range":"10.112.0.0/24","network_name":"twoholds"`)
	ps := &pods{}
	m := w.node(t, "twoholds-a", "", Deps{Pods: ps})
	ps.set("db", "db-0", "u1", "StatefulSet")
	first := add(t, m, c, "th-1", pod{"db", "db-0", "u1"})[0].Addr()
	second := add(t, m, c, "th-2", pod{"db", "db-0", "u1"})[0].Addr() // a new sandbox before the old one's DEL
	if first == second {
		t.Fatalf("two sandboxes got %s", first)
	}
	del(t, m, c, "th-1", pod{"db", "db-0", "u1"})
	del(t, m, c, "th-2", pod{"db", "db-0", "u1"})
	m.Reconcile(testbed.Ctx(t), time.Now().Add(11*time.Minute))
	if n := len(records(t, m)); n != 0 {
		t.Errorf("%d records after both holds expired (%s and %s)", n, first, second)
	}
	flushAll(t, m)
	if on := w.allocated(t, "twoholds"); len(on) != 0 {
		t.Errorf("after both holds expired the block lists %v", on)
	}
}

// testRestartWithoutRecords: a node whose pods are gone restarts; another node that needs an
// address of its block asks it to share, and it does.
func (w *world) testRestartWithoutRecords(t *testing.T) {
	// one /29 block: .1-.6
	c := conf("reshare", `"range":"10.113.0.0/29","network_name":"reshare","block_size":29`)
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	m1, err := New("reshare-a", dir, fast, Deps{API: w.api, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	m1.Start(ctx)
	add(t, m1, c, "rw-1", pod{"default", "rw-1", "u1"})
	del(t, m1, c, "rw-1", pod{"default", "rw-1", "u1"})
	m1.Flush(testbed.Ctx(t))
	stop()

	w.node(t, "reshare-a", dir, Deps{}) // restarted, no records
	b := w.node(t, "reshare-b", "", Deps{})
	out, err := b.Add(testbed.Ctx(t), req("ADD", c, "rw-2", pod{"default", "rw-2", "u2"}))
	if err != nil {
		t.Fatalf("ADD on reshare-b, whose only block is reshare-a's: %v", err)
	}
	if got := addrsOf(t, out)[0].Addr(); !netip.MustParsePrefix("10.113.0.0/29").Contains(got) {
		t.Errorf("reshare-b got %s", got)
	}
}

// testUnreadableRecord: a record file that does not parse keeps its address reserved.
func (w *world) testUnreadableRecord(t *testing.T) {
	c := conf("unread", `"range":"10.114.0.0/24","network_name":"unread"`)
	dir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	m1, err := New("unread-a", dir, fast, Deps{API: w.api, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	m1.Start(ctx)
	a := add(t, m1, c, "ur-1", pod{"default", "ur-1", "u1"})[0].Addr()
	add(t, m1, c, "ur-2", pod{"default", "ur-2", "u2"})
	m1.Flush(testbed.Ctx(t))
	stop()
	if err := os.WriteFile(m1.store.path("unread/v4", a), []byte(`{"pool":`), 0o600); err != nil {
		t.Fatal(err)
	}
	m2 := w.node(t, "unread-a", dir, Deps{})
	if got := add(t, m2, c, "ur-3", pod{"default", "ur-3", "u3"})[0].Addr(); got == a {
		t.Errorf("%s, whose record is unreadable, was handed out again", a)
	}
	flushAll(t, m2)
	if on := w.allocated(t, "unread"); on[a] != "unread-a" {
		t.Errorf("the block lists %v; %s (unreadable record) must stay the node's", on, a)
	}
	if _, err := os.Stat(m2.store.path("unread/v4", a)); err != nil {
		t.Errorf("the unreadable record: %v", err)
	}
}

// testReplugOtherNetwork: ADD of an interface name that still has a record of another
// network (its DEL never freed it) gets an address of the new network.
func (w *world) testReplugOtherNetwork(t *testing.T) {
	ca := conf("replug-a", `"range":"10.115.0.0/24","network_name":"replug-a"`)
	cb := conf("replug-b", `"range":"10.116.0.0/24","network_name":"replug-b"`)
	m := w.node(t, "replug", "", Deps{})
	add(t, m, ca, "rp-1", pod{"default", "rp", "u"})
	again := add(t, m, ca, "rp-1", pod{"default", "rp", "u"}) // an ADD retried: the same address
	got := add(t, m, cb, "rp-1", pod{"default", "rp", "u"})
	if len(got) != 1 || !netip.MustParsePrefix("10.116.0.0/24").Contains(got[0].Addr()) {
		t.Fatalf("re-plug on network replug-b got %v (replug-a gave %v)", got, again)
	}
	if n := len(records(t, m)); n != 1 {
		t.Errorf("%d records after the re-plug, want the new network's only", n)
	}
	flushAll(t, m)
	if on := w.allocated(t, "replug-a"); len(on) != 0 {
		t.Errorf("the old network's block still lists %v", on)
	}
}

// testStatefulSetLookupFails: an ADD whose StatefulSet test cannot ask the API server fails
// with code 11 naming the pod, instead of handing out an address that is not held.
func (w *world) testStatefulSetLookupFails(t *testing.T) {
	c := conf("stsfail", `"range":"10.117.0.0/24","network_name":"stsfail"`)
	ps := &pods{err: errors.New("dial tcp 10.0.0.1:443: connect: connection refused")}
	m := w.node(t, "stsfail-a", "", Deps{Pods: ps})
	_, err := m.Add(testbed.Ctx(t), req("ADD", c, "sf-1", pod{"db", "db-0", "u1"}))
	if err == nil {
		t.Fatal("ADD while the pod cannot be read succeeded: its address is not held if it is a StatefulSet's")
	}
	if ToCNI(err).Code != types.ErrTryAgainLater || !strings.Contains(err.Error(), "db/db-0") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Errorf("ADD while the pod cannot be read: %v; want code 11 naming db/db-0 and the cause", err)
	}
	if n := len(records(t, m)); n != 0 {
		t.Errorf("%d records after the failed ADD", n)
	}
	// no hold wanted: no lookup, the ADD works
	c0 := conf("stsfail", `"range":"10.117.0.0/24","network_name":"stsfail","sticky_hold":"0"`)
	add(t, m, c0, "sf-2", pod{"db", "db-0", "u1"})
}

// testNoUIDRecords: records of a runtime that passes no K8S_POD_UID are reclaimed once their
// pod is gone: no pod of the name, or one bound to another node, or one created after them.
func (w *world) testNoUIDRecords(t *testing.T) {
	c := conf("nouid", `"range":"10.118.0.0/24","network_name":"nouid"`)
	ps := &pods{}
	m := w.node(t, "nouid-a", "", Deps{Pods: ps})
	now := time.Now()
	onNode := func(name, node string, created time.Time) {
		ps.setPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: k8stypes.UID("x-" + name),
			CreationTimestamp: metav1.NewTime(created)}, Spec: corev1.PodSpec{NodeName: node}})
	}
	onNode("live", "nouid-a", now.Add(-time.Hour))
	onNode("moved", "nouid-a", now.Add(-time.Hour))
	onNode("again", "nouid-a", now.Add(-time.Hour))
	for _, n := range []string{"live", "moved", "again", "deleted"} {
		add(t, m, c, "nu-"+n, pod{"default", n, ""})
	}
	onNode("moved", "nouid-b", now.Add(time.Minute))     // deleted, and a new pod of the name on another node
	onNode("again", "nouid-a", now.Add(10*time.Minute))  // deleted, and a new pod of the name on this node
	m.Reconcile(testbed.Ctx(t), now.Add(10*time.Minute)) // seen gone
	if n := len(records(t, m)); n != 4 {
		t.Fatalf("%d records right after the pods went, want 4 (grace period)", n)
	}
	m.Reconcile(testbed.Ctx(t), now.Add(12*time.Minute))
	if left := recordOwners(t, m); len(left) != 1 || left[0] != "nu-live/net1" {
		t.Errorf("after the grace period the records of %v are left; want nu-live's only", left)
	}
}
