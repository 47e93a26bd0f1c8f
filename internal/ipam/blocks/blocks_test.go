package blocks

import (
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func sampleBlock() *IPBlock {
	held := metav1.NewTime(time.Unix(1_700_000_000, 0))
	return &IPBlock{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Labels: map[string]string{NodeLabel: "n1"}},
		Spec: IPBlockSpec{Pool: "p", CIDR: "10.1.0.0/26", Node: "n1", ShareWanted: []string{"n2"},
			Allocations: map[string]Allocation{"10.1.0.1": {Node: "n1", Pod: "ns/a", HeldUntil: &held}}},
	}
}

// TestDeepCopySharesNothing changes every reference field of a copy and finds the original
// unchanged.
func TestDeepCopySharesNothing(t *testing.T) {
	orig := sampleBlock()
	c := orig.DeepCopy()
	if !apiequality.Semantic.DeepEqual(orig, c) {
		t.Fatalf("copy differs: %+v", c)
	}
	c.Labels[NodeLabel] = "n9"
	c.Spec.ShareWanted[0] = "n9"
	c.Spec.Allocations["10.1.0.1"].HeldUntil.Time = time.Unix(0, 0)
	c.Spec.Allocations["10.1.0.2"] = Allocation{Pod: "ns/b"}
	if !apiequality.Semantic.DeepEqual(orig, sampleBlock()) {
		t.Errorf("changing the copy changed the original: %+v", orig)
	}

	list := &IPBlockList{Items: []IPBlock{*sampleBlock()}}
	lc := list.DeepCopyObject().(*IPBlockList)
	lc.Items[0].Spec.Allocations["10.1.0.1"] = Allocation{}
	if list.Items[0].Spec.Allocations["10.1.0.1"].Pod != "ns/a" {
		t.Error("changing the list copy changed the original")
	}
	if (*IPBlock)(nil).DeepCopyObject() != nil {
		t.Error("DeepCopyObject of a nil block is not a nil interface")
	}
}

func TestPrefix(t *testing.T) {
	for cidr, ok := range map[string]bool{
		"10.1.0.0/26": true, "fd00::40/122": true, "10.1.0.1/26": false, "10.1.0.0": false, "": false,
	} {
		b := &IPBlock{Spec: IPBlockSpec{CIDR: cidr}}
		p, err := b.Prefix()
		if ok && (err != nil || p.String() != cidr) {
			t.Errorf("Prefix of %q: %v, %v", cidr, p, err)
		}
		if !ok && err == nil {
			t.Errorf("Prefix of %q: %v, want an error", cidr, p)
		}
	}
}

func TestRecount(t *testing.T) {
	b := sampleBlock()
	b.Recount(61)
	if b.Spec.Used != 1 || b.Spec.Free != 61 {
		t.Errorf("used %d free %d, want 1 and 61", b.Spec.Used, b.Spec.Free)
	}
}
