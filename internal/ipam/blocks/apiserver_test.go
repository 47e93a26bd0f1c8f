package blocks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"

	"github.com/multinet/multinet/internal/testbed"
)

// TestIPBlocksOnARealAPIServer runs the client and the informer against a real
// kube-apiserver with deploy/crds/ipblock.yaml installed: the resource as kubectl shows it,
// create and create-again, update as a compare-and-swap, delete with preconditions, the
// informer's indexes and a block of 64 allocations. It needs the test bed's etcd and
// kube-apiserver (hack/tools.sh builds them once into ~/.cache/multinet); unlike the node
// tests it makes no network namespaces and does not need root. One control plane serves
// every subtest.
func TestIPBlocksOnARealAPIServer(t *testing.T) {
	cp := testbed.StartControlPlane(t)
	c, err := NewClient(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	w := &apiWorld{cp: cp, c: c}
	t.Run("resource as kubectl shows it", w.testResource)
	t.Run("create, then create again", w.testCreate)
	t.Run("update is a compare-and-swap", w.testUpdateCAS)
	t.Run("delete with preconditions", w.testDelete)
	t.Run("informer indexes by pool and node", w.testInformer)
	t.Run("64 allocations round-trip", w.testManyAllocations)
}

type apiWorld struct {
	cp *testbed.ControlPlane
	c  Client
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newBlock(name, pool, node, cidr string) *IPBlock {
	b := &IPBlock{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{NodeLabel: node}},
		Spec: IPBlockSpec{Pool: pool, Network: "storage", CIDR: cidr, Node: node}}
	b.Recount(62)
	return b
}

func (w *apiWorld) create(t *testing.T, b *IPBlock) *IPBlock {
	t.Helper()
	got, err := w.c.Create(ctxOf(t), b)
	if err != nil {
		t.Fatalf("create %s: %v", b.Name, err)
	}
	return got
}

// testResource checks discovery (cluster-scoped, short name, category) and the printer
// columns and cells of `kubectl get ipblocks`, through a Table request as kubectl makes it.
func (w *apiWorld) testResource(t *testing.T) {
	res, err := w.cp.Client.Discovery().ServerResourcesForGroupVersion(Group + "/" + Version)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	i := slices.IndexFunc(res.APIResources, func(r metav1.APIResource) bool { return r.Name == Resource })
	if i < 0 {
		t.Fatalf("discovery of %s/%s has no %s: %+v", Group, Version, Resource, res.APIResources)
	}
	r := res.APIResources[i]
	if r.Kind != Kind || r.Namespaced || !slices.Equal(r.ShortNames, []string{"ipb"}) ||
		!slices.Equal(r.Categories, []string{"multinet"}) {
		t.Errorf("discovery: %+v, want kind %s, cluster-scoped, short name ipb, category multinet", r, Kind)
	}

	b := newBlock("table-1", "pool-a", "node-a", "10.9.0.0/26")
	b.Spec.Shared = true
	b.Spec.Allocations = map[string]Allocation{"10.9.0.1": {Node: "node-a", Pod: "ns/web-0"}}
	b.Recount(61)
	w.create(t, b)

	table := w.table(t, b.Name)
	var names []string
	for _, col := range table.ColumnDefinitions {
		names = append(names, fmt.Sprintf("%s:%s:%d", col.Name, col.Type, col.Priority))
	}
	want := []string{"Name:string:0", "Network:string:0", "CIDR:string:0", "Node:string:0",
		"Used:integer:0", "Free:integer:0", "Shared:boolean:1", "Age:date:0"}
	if !slices.Equal(names, want) {
		t.Errorf("columns %v, want %v", names, want)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("%d rows, want 1", len(table.Rows))
	}
	cells := fmt.Sprint(table.Rows[0].Cells[:7])
	if wantCells := "[table-1 storage 10.9.0.0/26 node-a 1 61 true]"; cells != wantCells {
		t.Errorf("cells %s, want %s", cells, wantCells)
	}
}

// table lists the block name as a Table, as `kubectl get ipblocks NAME` does.
func (w *apiWorld) table(t *testing.T, name string) *metav1.Table {
	t.Helper()
	rc, err := restClientFor(w.cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rc.Get().Resource(Resource).Param("fieldSelector", "metadata.name="+name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctxOf(t))
	if err != nil {
		t.Fatalf("table request: %v", err)
	}
	table := &metav1.Table{}
	if err := json.Unmarshal(raw, table); err != nil {
		t.Fatalf("table: %v\n%s", err, raw)
	}
	return table
}

func (w *apiWorld) testCreate(t *testing.T) {
	b := newBlock("create-1", "pool-a", "node-a", "10.9.1.0/26")
	got := w.create(t, b)
	if got.ResourceVersion == "" || got.UID == "" || !apiequality.Semantic.DeepEqual(got.Spec, b.Spec) {
		t.Errorf("created %+v, want spec %+v with a UID and a resourceVersion", got, b.Spec)
	}
	if _, err := w.c.Create(ctxOf(t), b); !apierrors.IsAlreadyExists(err) {
		t.Errorf("create again: %v, want AlreadyExists", err)
	}
	if _, err := w.c.Get(ctxOf(t), "no-such-block"); !apierrors.IsNotFound(err) {
		t.Errorf("get of a missing block: %v, want NotFound", err)
	}
}

// testUpdateCAS races two updates from the same resourceVersion: one wins, the other gets a
// conflict, and the stored block is the winner's.
func (w *apiWorld) testUpdateCAS(t *testing.T) {
	base := w.create(t, newBlock("cas-1", "pool-a", "node-a", "10.9.2.0/26"))
	tries := []*IPBlock{base.DeepCopy(), base.DeepCopy()}
	errs := make([]error, len(tries))
	var wg sync.WaitGroup
	for i, b := range tries {
		b.Spec.Allocations = map[string]Allocation{fmt.Sprintf("10.9.2.%d", i+1): {Node: "node-a", Pod: fmt.Sprintf("ns/p%d", i)}}
		b.Recount(61)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.c.Update(ctxOf(t), b)
		}()
	}
	wg.Wait()
	winner := slices.IndexFunc(errs, func(err error) bool { return err == nil })
	loser := 1 - winner
	if winner < 0 || !apierrors.IsConflict(errs[loser]) {
		t.Fatalf("updates from one resourceVersion: %v, want one nil and one Conflict", errs)
	}
	got, err := w.c.Get(ctxOf(t), base.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !apiequality.Semantic.DeepEqual(got.Spec, tries[winner].Spec) {
		t.Errorf("stored spec %+v, want the winner's %+v", got.Spec, tries[winner].Spec)
	}

	blind := got.DeepCopy()
	blind.ResourceVersion = ""
	if _, err := w.c.Update(ctxOf(t), blind); !apierrors.IsInvalid(err) {
		t.Errorf("update without a resourceVersion: %v, want Invalid (never unconditional)", err)
	}
}

func (w *apiWorld) testDelete(t *testing.T) {
	created := w.create(t, newBlock("delete-1", "pool-a", "node-a", "10.9.3.0/26"))
	bumped := created.DeepCopy()
	bumped.Spec.Shared = true
	current, err := w.c.Update(ctxOf(t), bumped)
	if err != nil {
		t.Fatal(err)
	}
	name := created.Name
	if err := w.c.Delete(ctxOf(t), name, created.UID, created.ResourceVersion); !apierrors.IsConflict(err) {
		t.Errorf("delete with a stale resourceVersion: %v, want Conflict", err)
	}
	if err := w.c.Delete(ctxOf(t), name, types.UID("not-the-uid"), ""); !apierrors.IsConflict(err) {
		t.Errorf("delete with another UID: %v, want Conflict", err)
	}
	if err := w.c.Delete(ctxOf(t), name, current.UID, current.ResourceVersion); err != nil {
		t.Fatalf("delete with the current resourceVersion: %v", err)
	}
	if _, err := w.c.Get(ctxOf(t), name); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: %v, want NotFound", err)
	}
	if err := w.c.Delete(ctxOf(t), name, "", ""); !apierrors.IsNotFound(err) {
		t.Errorf("delete of a deleted block: %v, want NotFound", err)
	}
}

func (w *apiWorld) testInformer(t *testing.T) {
	inf := NewInformer(w.c, 0)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go inf.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctxOf(t).Done(), inf.HasSynced) {
		t.Fatal("informer never synced")
	}
	w.create(t, newBlock("inf-1", "pool-inf", "node-x", "10.9.4.0/26"))
	w.create(t, newBlock("inf-2", "pool-inf", "", "10.9.4.64/26"))
	w.create(t, newBlock("inf-3", "pool-other", "node-x", "10.9.5.0/26"))

	namesOf := func(bs []*IPBlock) string {
		var n []string
		for _, b := range bs {
			n = append(n, b.Name)
		}
		return fmt.Sprint(n)
	}
	checks := []struct{ what, got, want string }{}
	err := wait.PollUntilContextTimeout(ctxOf(t), 50*time.Millisecond, 20*time.Second, true,
		func(context.Context) (bool, error) {
			checks = []struct{ what, got, want string }{
				{"pool pool-inf", namesOf(ListByPool(inf, "pool-inf")), "[inf-1 inf-2]"},
				{"pool pool-other", namesOf(ListByPool(inf, "pool-other")), "[inf-3]"},
				{"node node-x", namesOf(ListByNode(inf, "node-x")), "[inf-1 inf-3]"},
				{"no node", namesOf(ListByNode(inf, "")), "[inf-2]"},
			}
			for _, c := range checks {
				if c.got != c.want {
					return false, nil
				}
			}
			return true, nil
		})
	if err != nil {
		t.Errorf("informer indexes never matched: %+v", checks)
	}
}

func (w *apiWorld) testManyAllocations(t *testing.T) {
	b := newBlock("many-1", "pool-a", "node-a", "10.9.6.0/24")
	b.Spec.Shared = true
	b.Spec.ShareWanted = []string{"node-b", "node-c"}
	b.Spec.Allocations = map[string]Allocation{}
	addr := netip.MustParseAddr("10.9.6.1")
	for i := range 64 {
		a := Allocation{Node: "node-a", Pod: fmt.Sprintf("ns/pod-%d", i), UID: fmt.Sprintf("uid-%d", i),
			ContainerID: fmt.Sprintf("%064x", i), IfName: "net1"}
		if i%8 == 0 {
			held := metav1.NewTime(time.Unix(1_800_000_000+int64(i), 0))
			a.HeldUntil = &held
		}
		b.Spec.Allocations[addr.String()] = a
		addr = addr.Next()
	}
	b.Recount(254 - 64)
	w.create(t, b)
	got, err := w.c.Get(ctxOf(t), b.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Allocations) != 64 || got.Spec.Used != 64 || !apiequality.Semantic.DeepEqual(got.Spec, b.Spec) {
		t.Errorf("read back %d allocations (used %d), spec differs: %v", len(got.Spec.Allocations), got.Spec.Used,
			!apiequality.Semantic.DeepEqual(got.Spec, b.Spec))
	}
	list, err := w.c.List(ctxOf(t), metav1.ListOptions{FieldSelector: "metadata.name=" + b.Name})
	if err != nil || len(list.Items) != 1 || len(list.Items[0].Spec.Allocations) != 64 {
		t.Errorf("list: %v, %d items", err, len(list.Items))
	}
}
